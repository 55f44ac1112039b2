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
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError, Interrupted
from distill.core.log import get_logger, print_summary
from distill.core.manifest import now
from distill.core.preempt import StopOnSignal
from distill.sft import launch, memory
from distill.sft.data import build_datasets, check_datasets
from distill.sft.memory import memory_plan
from distill.sft.model import build_trainer, load_model, load_tokenizer, model_shape_from_config, save_final
from distill.sft.output_dir import (
    finish,
    finished,
    prepare_output_dir,
    save_recipe,
    training_summary,
    write_sft_manifest,
)
from distill.sft.recipe import (
    SFT_DEFAULTS,
    SFTRecipe,
)
from distill.sft.trainer import SaveAndStopOnSignal


def run(recipe: SFTRecipe) -> Path:
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


def load_data(recipe: SFTRecipe, tokenizer: Any, eos_id: int, args: dict[str, Any], out: Path) -> Any:
    """Tokenize on the main process first, so the other ranks read its cache instead of redoing the work."""
    from accelerate import PartialState

    with PartialState().main_process_first():
        return build_datasets(recipe.datasets, tokenizer, eos_id, args.get("max_length"), out / ".cache",
                              recipe.drop_too_long, args.get("dataset_num_proc"))
