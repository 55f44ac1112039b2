"""What an on-policy distillation run costs, beside SFT on the same prompts: for `distill plan --method opd`.
Pure arithmetic, no imports beyond the standard library; every assumption comes back with its source.

    cost = opd_cost(student_params=7.6e9, teacher_params=32.8e9, prompts=20_000, samples_per_prompt=4,
                    completion_tokens=8192, prompt_tokens=120, gpu_peak_flops=989.4e12, price_per_gpu_hour=2.5)
    cost["stages"]["rollouts"]["gpu_hours"], cost["total_gpu_hours"], cost["sft_same_prompts"]["gpu_hours"]
    cost["assumptions"]["rollout_mfu"]   # {"value": 0.05, "source": "..."}

One on-policy step, per sampled sequence of P prompt and C completion tokens:
- rollouts (student decode, memory-bound): 2 N_student C FLOPs at a decode utilisation;
- teacher scoring (one prefill over P + C, no decode): 2 N_teacher (P + C) FLOPs at a prefill utilisation;
- student update (forward + backward over P + C, loss on C): 6 N_student (P + C) FLOPs at the training MFU.
SFT on the same prompts, for the comparison: 6 N_student (P + T) per teacher trace of T tokens (the rollouts and
scoring are replaced by generate's teacher decode, planned by `distill plan` itself).
"""

from __future__ import annotations

from typing import Any

ASSUMPTIONS: dict[str, tuple[float, str]] = {
    "rollout_mfu": (0.05, "estimate, not measured yet: long-output decode on vLLM at ~5% of peak (as plan's "
                    "eval_decode_mfu; replace with a measured opd run)"),
    "teacher_prefill_mfu": (0.40, "estimate: a prefill-only pass is compute-bound, like DeepSeek's 73.7K input "
                            "tokens/s per H800 node (open-infra-index 2025-02 day 6), ~40% of peak"),
    "update_mfu": (0.338, "distill's reference SFT figure: 33.8% MFU, Qwen2.5-1.5B shape, one H100 "
                   "(benchmarks/README.md, 2026-11-23); the update is an SFT step on the samples"),
    "sft_trace_tokens": (6000, "estimate: R1 traces average ~6K tokens (open-r1 update #1)"),
    "sft_epochs": (3.0, "distill's recipes/qwen7b.yaml: 3 epochs (open-r1 ran 5 over 350K examples)"),
}


def opd_cost(student_params: float, teacher_params: float, prompts: int, samples_per_prompt: int,
             completion_tokens: float, prompt_tokens: float, gpu_peak_flops: float, epochs: float = 1.0,
             price_per_gpu_hour: float | None = None, **overrides: float) -> dict[str, Any]:
    """GPU-hours (and cost) of rollouts, teacher scoring and updates, and of SFT on the same prompts."""
    used = {k: {"value": overrides.get(k, v), "source": "set by you" if k in overrides else s}
            for k, (v, s) in ASSUMPTIONS.items()}
    a = {k: float(v["value"]) for k, v in used.items()}
    sequences = prompts * samples_per_prompt * epochs
    seq_tokens = prompt_tokens + completion_tokens
    flops = {
        "rollouts": (2 * student_params * completion_tokens * sequences, a["rollout_mfu"]),
        "teacher_scoring": (2 * teacher_params * seq_tokens * sequences, a["teacher_prefill_mfu"]),
        "student_update": (6 * student_params * seq_tokens * sequences, a["update_mfu"]),
    }
    stages = {name: _hours(f, mfu, gpu_peak_flops, price_per_gpu_hour) for name, (f, mfu) in flops.items()}
    total = sum(s["gpu_hours"] for s in stages.values())
    sft_flops = 6 * student_params * (prompt_tokens + a["sft_trace_tokens"]) * prompts * a["sft_epochs"]
    return {
        "stages": stages,
        "total_gpu_hours": round(total, 1),
        "total_cost": round(total * price_per_gpu_hour, 2) if price_per_gpu_hour else None,
        "sequences": int(sequences),
        "sft_same_prompts": _hours(sft_flops, a["update_mfu"], gpu_peak_flops, price_per_gpu_hour),
        "assumptions": used,
    }


def _hours(flops: float, mfu: float, peak: float, price: float | None) -> dict[str, Any]:
    hours = flops / (mfu * peak) / 3600
    return {"flops": flops, "gpu_hours": hours, "cost": round(hours * price, 2) if price else None}  # display rounds
