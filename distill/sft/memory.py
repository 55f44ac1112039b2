"""Will this SFT run fit in GPU memory? An estimate made from the model config alone, before any weight loads.

    est = estimate(shape_of(config), MemoryPlan(tokens_per_device=32768, checkpointing=True, world=8,
                                                sharding="zero3", gpu_bytes=80e9))
    print(est.table()); est.fits; est.fixes     # ['gradient checkpointing (sft.gradient_checkpointing: true)', ...]

Per GPU: weights, gradients and optimizer states (divided over the GPUs as ZeRO/FSDP shard them), plus
activations for the tokens of one micro-batch. Byte counts per parameter: bf16 weights and gradients (2 + 2);
AdamW keeps two states in the weights' dtype (torch) or two fp32 states and an fp32 master copy (DeepSpeed,
4 + 8); 8-bit AdamW keeps two 1-byte states. Activations per token per layer, in bf16, are the tensors a
decoder layer keeps for backward with flash attention: about 7 hidden + 3 kv + 4 intermediate values; with
gradient checkpointing only each layer's input is kept and one layer is live at a time (with selective
checkpointing, the layers left out keep everything). It is an estimate
(about +-25%): it warns, and names the changes that would make the run fit; it never stops a run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from distill.sft import launch
from distill.sft.recipe import (
    SFTRecipe,
)

GIB = 2**30
OVERHEAD = 3 * GIB  # CUDA context, allocator slack, kernels' workspaces, the LM head's tiles


@dataclass(frozen=True)
class ModelShape:
    params: int
    hidden: int
    intermediate: int
    layers: int
    kv_dim: int
    vocab: int


@dataclass(frozen=True)
class MemoryPlan:
    tokens_per_device: int  # tokens in one micro-batch on one GPU (max_length x batch when packing)
    checkpointing: bool = True
    checkpoint_fraction: float = 1.0  # share of the layers that recompute (selective checkpointing)
    world: int = 1  # GPUs over all machines
    sharding: str = "none"  # none (single GPU or DDP), zero1, zero2, zero3, fsdp
    optimizer: str = "adamw"  # adamw or 8bit
    lora_params: int = 0  # trainable adapter parameters; 0 = full fine-tuning
    gpu_bytes: float = 80 * 2**30


@dataclass
class MemoryEstimate:
    parts: dict[str, float]
    plan: MemoryPlan
    fixes: list[str] = field(default_factory=list)  # each alone makes the run fit
    helps: list[str] = field(default_factory=list)  # reduce memory, but not enough alone

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.total <= 0.95 * self.plan.gpu_bytes

    def table(self) -> dict[str, str]:
        rows = {k: f"{v / GIB:,.1f} GiB" for k, v in self.parts.items()}
        rows["total per GPU"] = f"{self.total / GIB:,.1f} GiB of {self.plan.gpu_bytes / GIB:,.0f} GiB"
        return rows


def gpu_memory_bytes() -> float:
    """Memory of the first visible GPU, read with nvidia-smi so that the process that is about to launch the
    training ranks does not create a CUDA context (hundreds of MB) on GPU 0; 80 GiB when there is no GPU."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=20).stdout.split()
            if out:
                return float(out[0]) * 2**20
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    import torch

    return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 80 * GIB


def shape_of(config: Any, params: int) -> ModelShape:
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return ModelShape(params, config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                      kv_heads * head_dim, config.vocab_size)


def estimate(shape: ModelShape, plan: MemoryPlan) -> MemoryEstimate:
    """Bytes per GPU by part, with the fixes that would make a run that does not fit, fit."""
    est = MemoryEstimate(_parts(shape, plan), plan)
    if not est.fits:
        est.fixes, est.helps = fixes(shape, plan)
    return est


def _parts(shape: ModelShape, plan: MemoryPlan) -> dict[str, float]:
    trainable = plan.lora_params or shape.params
    deepspeed = plan.sharding.startswith("zero")
    state_bytes = 2 if plan.optimizer == "8bit" else (12 if deepspeed else 4)  # 2 states (+ fp32 master)
    shard = {"weights": plan.sharding in ("zero3", "fsdp"),
             "gradients": plan.sharding in ("zero2", "zero3", "fsdp"),
             "optimizer": plan.sharding != "none"}
    world = max(1, plan.world)

    def per_gpu(nbytes: float, part: str) -> float:
        return nbytes / world if shard[part] else nbytes

    per_layer_token = 2 * (7 * shape.hidden + 3 * shape.kv_dim + 4 * shape.intermediate)
    if plan.checkpointing:
        kept = (1 - plan.checkpoint_fraction) * shape.layers  # layers that keep all their activations
        stored = 2 * shape.hidden * (shape.layers - kept) + per_layer_token * kept
        activations = plan.tokens_per_device * (stored + per_layer_token)
    else:
        activations = plan.tokens_per_device * per_layer_token * shape.layers
    return {
        "weights": per_gpu(2 * shape.params, "weights"),
        "gradients": per_gpu(2 * trainable, "gradients"),
        "optimizer states": per_gpu(state_bytes * trainable, "optimizer"),
        "activations": activations,
        "overhead": OVERHEAD,
    }


def fixes(shape: ModelShape, plan: MemoryPlan) -> tuple[list[str], list[str]]:
    """Changes a user can make in the recipe: (those that alone make the run fit, the others)."""
    candidates = []
    if not plan.checkpointing or plan.checkpoint_fraction < 1:
        candidates.append(("gradient checkpointing of every layer (sft.gradient_checkpointing: true, "
                           "checkpoint_layers: 1.0)", {"checkpointing": True, "checkpoint_fraction": 1.0}))
    if plan.world > 1 and plan.sharding not in ("zero3", "fsdp"):
        candidates.append((f"shard weights, gradients and optimizer over the {plan.world} GPUs (launch."
                           "accelerate_config: recipes/accelerate/zero3.yaml or fsdp.yaml)", {"sharding": "zero3"}))
    more = max(8, plan.world * 2)
    candidates.append((f"more GPUs with ZeRO-3 (launch.num_processes / num_machines: {more} GPUs)",
                       {"world": more, "sharding": "zero3"}))
    if not plan.lora_params:
        candidates.append(("LoRA (lora: {r: 64})", {"lora_params": max(1, shape.params // 100)}))
    if plan.optimizer != "8bit":
        candidates.append(("8-bit AdamW (sft.optim: paged_adamw_8bit)", {"optimizer": "8bit"}))
    half = plan.tokens_per_device // 2
    candidates.append((f"a smaller sft.max_length or batch ({half:,} tokens per GPU)", {"tokens_per_device": half}))
    fitting = [name for name, change in candidates if _fits(shape, dataclasses.replace(plan, **change))]
    return fitting, [name for name, _ in candidates if name not in fitting]


def _fits(shape: ModelShape, plan: MemoryPlan) -> bool:
    return sum(_parts(shape, plan).values()) <= 0.95 * plan.gpu_bytes


def memory_plan(recipe: SFTRecipe, args: dict[str, Any], accelerate: dict[str, Any], shape: Any) -> Any:
    # GPU "GB" are GiB: an 80 GB H100 reports 79.2 GiB
    gpu = recipe.launch.gpu_memory_gb * GIB if recipe.launch.gpu_memory_gb else gpu_memory_bytes()
    lora = 0
    if recipe.lora:  # r x (in + out) per adapted linear: 7 linears per layer of about hidden x hidden..intermediate
        lora = recipe.lora.r * shape.layers * (4 * 2 * shape.hidden + 3 * (shape.hidden + shape.intermediate))
    optim = str(args.get("optim", "adamw_torch"))
    return MemoryPlan(
        tokens_per_device=(args.get("max_length") or 4096) * args.get("per_device_train_batch_size", 1),
        checkpointing=bool(args.get("gradient_checkpointing", True)), checkpoint_fraction=recipe.checkpoint_layers,
        world=launch.total_processes(recipe.launch),
        sharding=launch.sharding(accelerate), optimizer="8bit" if "8bit" in optim else "adamw", lora_params=lora,
        gpu_bytes=gpu)
