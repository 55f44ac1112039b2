"""TRL's SFTTrainer with throughput accounting: tokens/s and model-FLOPs utilisation in the logs and the progress.

    trainer = DistillSFTTrainer(model=model, args=sft_config, train_dataset=ds, processing_class=tok)
    trainer.train()          # logs gain `tokens_per_s` (all GPUs) and `mfu` (per GPU, vs the bf16 datasheet peak)

FLOPs are counted the way the baseline (../shared/bench/trl_sft_baseline.py) counts them, so figures compare:
6 N per trained token for the matmuls (4 N when the weights are frozen, as under LoRA: no weight gradients) plus
6 * layers * hidden * len^2 per document of len tokens for causal attention. Activation recomputation under
gradient checkpointing is not counted: MFU measures useful work.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback
from trl import SFTTrainer

from distill.core.gpus import peak_flops
from distill.core.log import Progress
from distill.sft.attention import boundaries_from_positions
from distill.sft.flops import flops_per_document, model_shape


def document_lengths(inputs: dict[str, Any]) -> list[int]:
    """Lengths of the documents in a collated batch (packed: from the boundaries; padded: from the mask)."""
    if inputs.get("cu_seq_lens_q") is not None:
        return inputs["cu_seq_lens_q"].diff().tolist()
    if inputs.get("attention_mask") is not None:
        return inputs["attention_mask"].sum(-1).tolist()
    if inputs.get("position_ids") is not None:
        return boundaries_from_positions(inputs["position_ids"])[0].diff().tolist()
    return [inputs["input_ids"].shape[1]] * inputs["input_ids"].shape[0]


class Meter:
    """Counts this process's tokens and model FLOPs (cumulative), and their rates between two window() reads."""

    def __init__(self, model: Any, world_size: int = 1):
        import torch

        self.shape = model_shape(model)
        self.world_size = world_size
        self.peak = peak_flops(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
        self.tokens = 0
        self.flops = 0.0
        self._mark = (time.perf_counter(), 0, 0.0)

    def add(self, inputs: dict[str, Any]) -> None:
        lengths = document_lengths(inputs)
        self.tokens += sum(lengths)
        self.flops += sum(flops_per_document(self.shape, n) for n in lengths)

    def window(self) -> dict[str, float]:
        """tokens/s (all processes) and MFU (per GPU) since the last call."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        since, tokens, flops = self._mark
        dt = max(now - since, 1e-9)
        stats = {"tokens_per_s": round((self.tokens - tokens) * self.world_size / dt, 1)}
        if self.peak:
            stats["mfu"] = round((self.flops - flops) / dt / self.peak, 4)
            stats["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        self._mark = (now, self.tokens, self.flops)
        return stats


class DistillSFTTrainer(SFTTrainer):
    """SFTTrainer that meters every micro-batch and adds tokens/s and MFU to each log (so to `report_to`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from transformers.trainer_callback import PrinterCallback

        self.meter = Meter(self.model, self.args.world_size)
        # the progress line carries the loss; the raw log dicts still reach report_to and trainer_state.json
        self.remove_callback(PrinterCallback)
        self.add_callback(ProgressCallback(self.meter))

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.meter.add(inputs)
        return super().training_step(model, inputs, *args, **kwargs)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:
            logs.update(self.meter.window())
        super().log(logs, *args, **kwargs)


class SelectiveCheckpointing(TrainerCallback):
    """With gradient checkpointing on, recompute only `fraction` of the decoder layers, spread evenly: the others
    keep their activations. Less recomputation for more memory, the knob between full checkpointing (about a
    third more compute) and none (all activations)."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        from transformers.modeling_layers import GradientCheckpointingLayer

        if not args.gradient_checkpointing or self.fraction >= 1 or model is None:
            return
        layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
        for i, layer in enumerate(layers):
            layer.gradient_checkpointing = int((i + 1) * self.fraction) > int(i * self.fraction)


class ProgressCallback(TrainerCallback):
    """distill's progress line (steps, tokens/s, ETA) over the optimizer steps."""

    def __init__(self, meter: Meter):
        self.meter = meter
        self.bar = None
        self._counted = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # a resumed run counts only the steps still to do, so rates and ETA stay right
        self.bar = Progress("sft", total=state.max_steps - state.global_step, unit="steps").__enter__()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.advance(1, tokens=(self.meter.tokens - self._counted) * self.meter.world_size)
            self._counted = self.meter.tokens

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.note = f"loss {float(logs['loss']):.4g}"

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class SaveAndStopOnSignal(TrainerCallback):
    """On a stop request (SIGTERM, see distill.core.preempt) finish the step in hand, log its loss, save a checkpoint
    at that step and end training: a re-run resumes from it and ends at the same step count. Every rank must stop
    at the same step (the checkpoint is collective, and a rank that trained on would wait forever in its next
    all-reduce), so the ranks agree on the flag each step; a rank the signal missed stops with the others."""

    def __init__(self, stop: Any):
        self.stop = stop
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        last = state.global_step >= state.max_steps  # the run ends here anyway: let it save its final model
        if self.stopped_at is None and requested_anywhere(self.stop.requested, args) and not last:
            control.should_log = True  # the losses since the last log would otherwise be lost from the curve
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step


def requested_anywhere(requested: bool, args: Any) -> bool:
    """`requested` on any rank: an all-reduce of one number per step under torch.distributed, else as is."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return requested
    device = args.device if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())
