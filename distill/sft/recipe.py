"""The configuration of `distill sft` (SFTRecipe, MANAGED_SFT_KEYS, SFT_DEFAULTS): import-light, read by the CLI and the
package root without loading the stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distill.core.config import load_config, option
from distill.core.errors import DistillError


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
    chat_template: str = option("chatml_r1", help="chatml_r1 (Qwen, tiny), llama3_r1 (Llama 3), gemma_r1 (Gemma), "
                                "mistral_r1 (Mistral), a .jinja file, or 'tokenizer' to keep the tokenizer's own.")
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
    "packing": True,  # packed rows, documents kept apart by the attention (distill.sft.attention)
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
    recipe = load_config(SFTRecipe, path, list(overrides))
    if recipe.name is None:
        recipe.name = Path(path).stem
    return recipe
