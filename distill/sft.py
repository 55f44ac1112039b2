"""Stage 3, `distill sft`: fine-tune a student on curated teacher traces, packed, resumable, single GPU to multi-node.

    distill sft recipes/qwen1_5b.yaml --set output_dir=runs/sft/qwen1_5b
    sft(load_recipe("recipes/tiny.yaml", ["datasets.0.path=runs/data"]))

Reads one or more curate output dirs (`DIR/data/train-*.parquet`, SFT_EXAMPLE schema) or hub datasets. Writes
OUTPUT_DIR/ as a model that loads with AutoModelForCausalLM.from_pretrained (weights, tokenizer with the chat
template, generation_config whose EOS ends the assistant turn), OUTPUT_DIR/checkpoint-*/ while training,
OUTPUT_DIR/training_curve.png and OUTPUT_DIR/manifest.json (lineage: the datasets, and through them the teacher;
config: the recipe, `student` = base model id, `recipe` = recipe name). Re-running the same command after a crash
resumes from the last complete checkpoint and ends at the same step count.
"""

from __future__ import annotations

import dataclasses
import difflib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distill.config import option
from distill.errors import DistillError, Interrupted
from distill.preempt import StopOnSignal
from distill.sft_model import (
    build_trainer,
    load_model,
    load_tokenizer,
    model_shape_from_config,
    save_final,
)
from distill.sft_outputs import finish, finished, prepare_output_dir, save_recipe, training_summary, write_sft_manifest


@dataclass
class ModelSpec:
    name: str = option(help="Base model: hub id or local dir. With init: from_config, a dir/id holding config.json, "
                       "or a model type (qwen2, llama) whose config is built from `config`.")
    init: Literal["pretrained", "from_config"] = option(
        "pretrained", help="pretrained: load the weights; from_config: random init (a student trained from scratch).")
    tokenizer: str | None = option(None, help="Tokenizer id or dir; default: the model's.")
    config: dict[str, Any] = option({}, help="Model config overrides, e.g. {rope_theta: 300000, "
                                    "max_position_embeddings: 32768}, or a whole tiny config with from_config.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = option(
        "auto", help="Weights dtype; auto: bfloat16 on GPU, float32 on CPU.")
    attn_implementation: str = option(
        "auto", help="auto: distill_varlen (document-masked: varlen flash attention on CUDA, exact per-document "
        "SDPA on CPU); or any transformers implementation (sdpa, flash_attention_2, ...).")
    chat_template: str = option("chatml_r1", help="chatml_r1 (Qwen, tiny), llama3_r1 (Llama 3), a .jinja file, or "
                                "'tokenizer' to keep the tokenizer's own.")
    eos_token: str | None = option(None, help="Token that ends an assistant turn; default: the template's.")
    trust_remote_code: bool = option(False, help="Let the model run the Python code it ships (auto_map); off by "
                                     "default: turn it on only for a source you trust.")


@dataclass
class DatasetSpec:
    path: str = option(help="A curate output dir (DIR/data/train-*.parquet) or a hub dataset id with `messages`.")
    weight: float = option(1.0, help="Row multiplier in the mixture: 0.5 = a seeded random half, 2 = every row twice.")
    seed: int = option(0, help="Seed of this dataset's subsampling and eval split.")
    split: str = option("train", help="Split of a hub dataset.")
    subset: str | None = option(None, help="Config (subset) of a hub dataset.")
    eval_size: float = option(0.0, help="Held-out eval prompts: a fraction (< 1) or a count (>= 1); 0 = none.")


@dataclass
class LoraSpec:
    r: int = option(64, help="LoRA rank.")
    alpha: int = option(128, help="LoRA alpha (scale = alpha / r).")
    dropout: float = option(0.05, help="Dropout on the LoRA input.")
    target_modules: list[str] = option(["all-linear"], help="Modules to adapt; all-linear = every linear but the head.")
    merge: bool = option(True, help="Merge the adapters into the weights of OUTPUT_DIR (adapters kept in adapter/).")


@dataclass
class LaunchSpec:
    accelerate_config: str | None = option(None, help="accelerate config file to launch with: recipes/accelerate/"
                                           "{single_gpu,ddp,fsdp,zero3}.yaml or your own; none: one plain process.")
    num_processes: int = option(1, help="GPUs per machine; more than 1 re-launches under `accelerate launch`.")
    num_machines: int = option(1, help="Machines (nodes); run the same command on each (see recipes/slurm/).")
    machine_rank: int = option(0, help="This machine's rank (0 .. num_machines-1).")
    main_process_ip: str | None = option(None, help="Address of machine rank 0 (multi-node).")
    main_process_port: int = option(29500, help="Port of the rendezvous on machine rank 0.")
    gpu_memory_gb: float | None = option(None, help="GPU memory for the memory estimate when the GPU is not visible "
                                         "(default: the visible GPU's, else 80).")


@dataclass
class SFTRecipe:
    model: ModelSpec = option(help="The student: base model, init, tokenizer, dtype, attention, chat template, EOS.")
    datasets: list[DatasetSpec] = option(help="Training data: curate output dirs or hub ids, each with a weight.")
    output_dir: str = option(help="Final model dir; checkpoints go to OUTPUT_DIR/checkpoint-*/.")
    sft: dict[str, Any] = option({}, help="Passed to TRL's SFTConfig under TRL's names (learning_rate, max_length, "
                                 "packing, num_train_epochs, ...); distill's defaults are in sft.SFT_DEFAULTS.")
    lora: LoraSpec | None = option(None, help="Train LoRA adapters instead of every weight (peft).")
    launch: LaunchSpec = option(default_factory=LaunchSpec, help="How to launch: accelerate config, processes, machines.")
    name: str | None = option(None, help="Recipe name for the manifest; default: the recipe file's name.")
    checkpoint_layers: float = option(1.0, help="With sft.gradient_checkpointing: the fraction of decoder layers "
                                      "that recompute activations (0.5 = every other layer: faster, more memory).")
    drop_too_long: bool = option(True, help="Drop examples longer than sft.max_length (a cut trace never reaches its "
                                 "answer or EOS); false: truncate them.")
    force: bool = option(False, help="Train into an OUTPUT_DIR that holds a run of another model or dataset.")

    def __post_init__(self) -> None:
        if not self.datasets:
            raise DistillError("datasets is empty; list at least one curate output dir under datasets: - path: DIR")
        for i, d in enumerate(self.datasets):
            if d.weight <= 0:
                raise DistillError(f"datasets.{i}.weight must be > 0, not {d.weight}; drop the dataset instead")
        for key, where in MANAGED_SFT_KEYS.items():
            if key in self.sft:
                raise DistillError(f"sft.{key} is managed by distill: {where}")
        if not 0 < self.checkpoint_layers <= 1:
            raise DistillError(f"checkpoint_layers must be in (0, 1], not {self.checkpoint_layers}; turn checkpointing "
                               "off with sft.gradient_checkpointing: false")
        if self.lora and self.model.init == "from_config":
            raise DistillError("lora adapts pretrained weights, but model.init is from_config (random weights); "
                               "drop lora: or load a pretrained model")
        if self.launch.num_processes < 1 or self.launch.num_machines < 1:
            raise DistillError("launch.num_processes and launch.num_machines must be at least 1")


# SFTConfig keys the recipe sets elsewhere, and where.
MANAGED_SFT_KEYS = {
    "output_dir": "set output_dir at the top level of the recipe",
    "resume_from_checkpoint": "runs resume from the last checkpoint in output_dir by themselves",
    "assistant_only_loss": "the loss is always on the assistant turn only (prompt labels are -100)",
    "completion_only_loss": "the loss is always on the assistant turn only (prompt labels are -100)",
    "dataset_text_field": "datasets are conversational (messages) and tokenized by distill",
    "dataset_kwargs": "datasets are tokenized by distill",
    "chat_template_path": "set model.chat_template",
    "eos_token": "set model.eos_token",
    "pad_token": "the pad token comes from model.chat_template",
    "model_init_kwargs": "set model.dtype, model.attn_implementation and model.config",
}

# distill's defaults below the recipe's `sft:` (TRL's own defaults below these).
SFT_DEFAULTS: dict[str, Any] = {
    "packing": True,  # packed rows, documents kept apart by the attention (distill.packing)
    "packing_strategy": "bfd",
    "max_length": 16384,
    "per_device_train_batch_size": 1,
    "shuffle_dataset": True,
    "gradient_checkpointing_kwargs": {"use_reentrant": False},  # reentrant checkpointing breaks DDP and LoRA
    "logging_steps": 10,
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 2,
    "report_to": "none",
    "disable_tqdm": True,  # distill's own progress line shows steps, tokens/s and ETA
    "ddp_find_unused_parameters": False,
}


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SFTRecipe:
    """The recipe from YAML + `key=value` overrides; its name defaults to the file's stem."""
    from distill.config import load_config

    recipe = load_config(SFTRecipe, path, list(overrides))
    if recipe.name is None:
        recipe.name = Path(path).stem
    return recipe


def sft(recipe: SFTRecipe) -> Path:
    from distill import launch
    from distill.io import now
    from distill.sft_data import check_datasets
    from distill.trainer import SaveAndStopOnSignal

    out = Path(recipe.output_dir)
    args = resolve_args(recipe)
    accelerate = launch.read_accelerate_config(recipe.launch.accelerate_config)
    check_datasets(recipe.datasets)
    # ---------------------------------------------------------------- memory estimate, before loading weights
    if not launch.inside_launcher():
        check_memory(recipe, args, accelerate)
    if launch.needs_relaunch(recipe.launch, accelerate):
        load_tokenizer(recipe.model)  # unreachable model or tokenizer, bad EOS: one error here, not one per rank
        launch.relaunch(save_recipe(recipe, out), recipe.launch)
        return out
    # ---------------------------------------------------------------- output dir: finished, resumable, or new
    if finished(out, recipe):
        return out
    resume = prepare_output_dir(out, recipe)
    started = now()
    with StopOnSignal(what="the current training step and saving a checkpoint") as stop:
        # ------------------------------------------------------------ tokenizer and data
        config = sft_config(args, out)  # before the model: under ZeRO-3 it makes from_pretrained load partitioned
        tokenizer, eos_id = load_tokenizer(recipe.model)
        data = load_data(recipe, tokenizer, eos_id, args, out)
        # ------------------------------------------------------------ model and training
        # Trainer seeds itself only once the model exists: a student from config would get unseeded random
        # weights, and the same recipe a different student on every run.
        from transformers import set_seed

        set_seed(config.seed)
        model = load_model(recipe.model, args, tokenizer, eos_id)
        trainer = build_trainer(recipe, config, model, tokenizer, data.train, data.eval)
        stopper = SaveAndStopOnSignal(stop)  # SIGTERM: checkpoint at the current step, then stop
        trainer.add_callback(stopper)
        write_sft_manifest(out, recipe, args, data, None, started, "running")
        result = trainer.train(resume_from_checkpoint=resume)
    if stopper.stopped_at is not None:
        stopped(out, recipe, args, data, trainer, result, started, stop.signum or signal.SIGTERM)
    # ---------------------------------------------------------------- final model, manifest, summary
    save_final(trainer, recipe, out)
    write_sft_manifest(out, recipe, args, data, training_summary(trainer, result), started, "complete")
    finish(out, trainer, data)
    return out


def stopped(out: Path, recipe: SFTRecipe, args: dict[str, Any], data: Any, trainer: Any, result: Any, started: str,
            signum: int) -> None:
    """The manifest of a run stopped by a signal, then Interrupted: the CLI exits 143 and a re-run resumes."""
    step, total = trainer.state.global_step, trainer.state.max_steps
    write_sft_manifest(out, recipe, args, data, training_summary(trainer, result), started, "interrupted")
    raise Interrupted(signum, f"saved {out / f'checkpoint-{step}'} at step {step:,} of {total:,}; re-run the same "
                      "command to resume from it")


# ---------------------------------------------------------------- recipe -> SFTConfig arguments


def resolve_args(recipe: SFTRecipe) -> dict[str, Any]:
    """SFTConfig keyword arguments: distill's defaults < the recipe's `sft:`, then what this machine can do."""
    check_sft_keys(recipe.sft)
    args = {**SFT_DEFAULTS, **recipe.sft}
    adapt_to_device(args)
    if any(d.eval_size for d in recipe.datasets) and args.get("eval_strategy", "no") == "no":
        args["eval_strategy"], args["eval_steps"] = args["save_strategy"], args.get("save_steps")
    return args


def check_sft_keys(sft_args: dict[str, Any]) -> None:
    """Unknown keys are errors with a suggestion. Values YAML misreads are fixed by the field's type: `1e-5` (a
    string in YAML 1.1) becomes a float, `no` (read as false) goes back to string options like save_strategy."""
    from trl import SFTConfig

    fields = {f.name: f for f in dataclasses.fields(SFTConfig) if f.init}
    valid = set(fields)
    for key, value in sft_args.items():
        kind = str(fields[key].type) if key in fields else ""
        if isinstance(value, bool) and "bool" not in kind:
            sft_args[key] = "no" if value is False else "yes"
        elif isinstance(value, str) and ("float" in kind or "int" in kind):
            sft_args[key] = _number(value, float if "float" in kind else int)
    unknown = sorted(set(sft_args) - valid)
    if unknown:
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, valid, 1)) else k
                 for k in unknown]
        raise DistillError(f"unknown key{'s' if len(unknown) > 1 else ''} sft.{', sft.'.join(hints)}; sft takes "
                           "TRL SFTConfig fields (learning_rate, max_length, num_train_epochs, ...)")


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text  # not a number after all: SFTConfig names the problem


def adapt_to_device(args: dict[str, Any]) -> None:
    """Turn off what this machine cannot do, saying so: bf16/fp16, Liger and torch.compile without a GPU, Liger
    when it is not installed."""
    import importlib.util

    import torch

    from distill.log import get_logger

    off = []
    if not torch.cuda.is_available():
        for key in ("bf16", "fp16", "use_liger_kernel", "torch_compile", "tf32"):
            if args.get(key):
                off.append(key)
            args[key] = False
        args["use_cpu"] = True
    elif args.get("use_liger_kernel") and importlib.util.find_spec("liger_kernel") is None:
        args["use_liger_kernel"] = False
        off.append("use_liger_kernel (pip install liger-kernel)")
    if off:
        get_logger().warning(f"no {'GPU' if not torch.cuda.is_available() else 'Liger'} here: turned off "
                             f"{', '.join(off)}")


def sft_config(args: dict[str, Any], out: Path) -> Any:
    import warnings

    from trl import SFTConfig

    try:
        with warnings.catch_warnings():  # transformers 5.2x renames gradient_checkpointing; TRL keeps the old name
            warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6.*")
            return SFTConfig(output_dir=str(out), **args)
    except (ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DistillError(f"invalid sft settings: {first}") from None


# ---------------------------------------------------------------- memory


def check_memory(recipe: SFTRecipe, args: dict[str, Any], accelerate: dict[str, Any]) -> None:
    """Warn before loading anything large when the run will not fit, naming the changes that make it fit."""
    import torch

    from distill import launch, memory
    from distill.log import get_logger, print_summary

    if not torch.cuda.is_available() and not recipe.launch.gpu_memory_gb:
        get_logger().info("no GPU here: memory estimate skipped (set launch.gpu_memory_gb to size a GPU run)")
        return
    shape = model_shape_from_config(recipe.model)
    if shape is None:
        get_logger().info("memory estimate skipped: the model config is not available offline")
        return
    est = memory.estimate(shape, memory_plan(recipe, args, accelerate, shape))
    if est.fits:
        get_logger().info(f"memory estimate: {est.total / memory.GIB:,.1f} GiB per GPU of "
                          f"{est.plan.gpu_bytes / memory.GIB:,.0f} GiB")
        return
    print_summary("sft memory estimate (per GPU)", est.table())
    fix = ("each of these alone makes it fit: " + "; ".join(est.fixes)) if est.fixes else (
        "try several of: " + "; ".join(est.helps))
    get_logger().warning(f"this run will likely not fit in GPU memory ({est.total / memory.GIB:,.0f} GiB > "
                         f"{est.plan.gpu_bytes / memory.GIB:,.0f} GiB per GPU, {launch.sharding(accelerate)} "
                         f"sharding); {fix}")


def memory_plan(recipe: SFTRecipe, args: dict[str, Any], accelerate: dict[str, Any], shape: Any) -> Any:
    from distill import launch, memory

    # GPU "GB" are GiB: an 80 GB H100 reports 79.2 GiB
    gpu = recipe.launch.gpu_memory_gb * memory.GIB if recipe.launch.gpu_memory_gb else memory.gpu_memory_bytes()
    lora = 0
    if recipe.lora:  # r x (in + out) per adapted linear: 7 linears per layer of about hidden x hidden..intermediate
        lora = recipe.lora.r * shape.layers * (4 * 2 * shape.hidden + 3 * (shape.hidden + shape.intermediate))
    optim = str(args.get("optim", "adamw_torch"))
    return memory.MemoryPlan(
        tokens_per_device=(args.get("max_length") or 4096) * args.get("per_device_train_batch_size", 1),
        checkpointing=bool(args.get("gradient_checkpointing", True)), checkpoint_fraction=recipe.checkpoint_layers,
        world=launch.total_processes(recipe.launch),
        sharding=launch.sharding(accelerate), optimizer="8bit" if "8bit" in optim else "adamw", lora_params=lora,
        gpu_bytes=gpu)


def load_data(recipe: SFTRecipe, tokenizer: Any, eos_id: int, args: dict[str, Any], out: Path) -> Any:
    """Tokenize on the main process first, so the other ranks read its cache instead of redoing the work."""
    from accelerate import PartialState

    from distill.sft_data import build_datasets

    with PartialState().main_process_first():
        return build_datasets(recipe.datasets, tokenizer, eos_id, args.get("max_length"), out / ".cache",
                              recipe.drop_too_long, args.get("dataset_num_proc"))
