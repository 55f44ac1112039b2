"""TRL's DistillationTrainer (teacher in-process) and ServerDistillationTrainer (teacher behind a server), with
what distill adds to them: prompts tokenized as distill rendered them, tokens/s, a progress line with the
per-token reverse KL, the mean sample length and the share of samples that end with EOS.

    trainer = OPDTrainer(model=student, teacher_model=teacher, args=config, train_dataset=ds, processing_class=tok)
    trainer = OPDServerTrainer(served_teacher, model=student, args=server_config, train_dataset=ds, ...)

TRL logs per step `loss` (the generalized JSD: with beta 1 and temperature 1 the per-token reverse KL of the
student from the teacher, averaged over the sampled tokens), `completions/mean_length` and
`completions/clipped_ratio` (samples cut at max_completion_length: they did not end with EOS).
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback
from trl import DistillationTrainer
from trl.experimental.server_distillation import ServerDistillationTrainer

from distill.core.log import Progress


class _DistillAdditions:
    """Mixed into both trainers (before TRL's class, so these methods win)."""

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict]:
        # The prompts arrive as text distill rendered (R1 user turn, the template's own system turn kept or
        # dropped, the <think> prefill). TRL would tokenize plain text with add_special_tokens=True, which puts a
        # second BOS in front of templates that already write one (Llama 3); the text already holds every
        # special token, so nothing is added here.
        if prompts and isinstance(prompts[0], str):
            ids = self.processing_class(text=prompts, add_special_tokens=False)["input_ids"]
            return ids, None, {}
        return super()._tokenize_prompts(prompts)

    def _start_meter(self) -> None:
        self._meter_mark = (time.perf_counter(), 0)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and hasattr(self, "_meter_mark"):
            now, seen = time.perf_counter(), int(self.state.num_input_tokens_seen or 0)
            since, before = self._meter_mark
            # prompt + sampled tokens this process and the others handled since the last log
            logs["tokens_per_s"] = round((seen - before) / max(now - since, 1e-9), 1)
            self._meter_mark = (now, seen)
        super().log(logs, *args, **kwargs)


class OPDTrainer(_DistillAdditions, DistillationTrainer):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._start_meter()


class OPDServerTrainer(_DistillAdditions, ServerDistillationTrainer):
    """ServerDistillationTrainer scoring through distill's ServedTeacher instead of TRL's VLLMClient (see
    distill/opd/teacher_server.py for what that client lacks). TRL's __init__ would build its own client, so
    this one runs DistillationTrainer's and then sets what ServerDistillationTrainer's sets."""

    def __init__(self, teacher: Any, *args: Any, **kwargs: Any):
        DistillationTrainer.__init__(self, *args, teacher_model=None, **kwargs)
        self.reverse_kl_top_1_mode = self.args.reverse_kl_top_1_mode
        self.loss_top_k = self.args.loss_top_k
        self.loss_add_tail = self.args.loss_add_tail
        self.teacher_client = teacher
        self._start_meter()


class OPDProgress(TrainerCallback):
    """distill's progress line over the optimizer steps: tokens/s, the per-token KL, mean sample length, EOS share."""

    def __init__(self, beta: float):
        self.label = "reverse KL/token" if beta == 1 else f"JSD(beta={beta:g})/token"
        self.bar = None
        self._seen = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:

        # a resumed run counts only the steps still to do, so rates and ETA stay right
        self.bar = Progress("opd", total=state.max_steps - state.global_step, unit="steps").__enter__()
        self._seen = int(state.num_input_tokens_seen or 0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            seen = int(state.num_input_tokens_seen or 0)
            self.bar.advance(1, tokens=seen - self._seen)
            self._seen = seen

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.note = step_note(logs, self.label)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def step_note(logs: dict[str, Any], label: str) -> str:
    note = f"{label} {float(logs['loss']):.4g}"
    if logs.get("completions/mean_length") is not None:
        note += f" | sample {logs['completions/mean_length']:.0f} tok"
    if logs.get("completions/clipped_ratio") is not None:
        note += f" | EOS {1 - logs['completions/clipped_ratio']:.0%}"
    return note
