"""The configuration of `distill plan` (PlanConfig, DEFAULTS, Assumptions): import-light, read by the CLI and the
package root without loading the stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill.core.config import option
from distill.core.errors import DistillError
from distill.plan.measured import Measured


@dataclass
class PlanConfig:
    method: Literal["sft", "opd"] = option("sft", help="sft: generate -> curate -> sft -> eval from a student "
                                           "recipe; opd: on-policy distillation from an opd recipe "
                                           "(recipes/opd/), beside SFT on the same prompts, then eval.")
    teacher: str = option("deepseek-r1", help="Teacher registry name (`distill teachers`).")
    prompts: str | None = option(None, help="Prompt count (200000) or a prompt file to count; default: the "
                                 "prompts of the --from run.")
    samples: int | None = option(None, help="Teacher samples per prompt; default: the --from run's, else 1.")
    student: str | None = option(None, help="Student recipe (recipes/qwen7b.yaml): model, max_length, epochs, "
                                 "sharding. Without it only generate and curate are planned. With "
                                 "--method opd: an opd recipe (recipes/opd/qwen7b_qwq32b.yaml).")
    recipe_overrides: list[str] = option([], help="key=value overrides of the recipe (e.g. sft.num_train_epochs=2).")
    gpu: str = option("h100", help="GPU type: h100, h200, h800, b200, a100-80gb, a100-40gb, l40s, mi300x.")
    nodes: int = option(1, help="Nodes available to every stage.")
    gpus_per_node: int = option(8, help="GPUs per node.")
    price_per_gpu_hour: float | None = option(None, help="Price of one GPU-hour, for the cost column.")
    from_dir: str | None = option(None, help="A finished run (e.g. runs/demo): use its measured lengths, keep "
                                  "rate and throughputs instead of the published defaults.")
    tasks: list[str] | None = option(None, help="Eval tasks: aime (= aime24, aime25), aime24, aime25, math500; "
                                     "default aime,math500, or the --from run's tasks.")
    eval_samples: int | None = option(None, help="Samples per eval problem (k); default 64 AIME, 4 MATH-500.")
    # ---------------------------------------------------------------- assumptions (None: default, with source)
    prompt_tokens_mean: float | None = option(None, help="Tokens of one prompt as the teacher sees it.")
    completion_tokens_mean: float | None = option(None, help="Mean teacher completion (trace) tokens.")
    keep_rate: float | None = option(None, help="Share of traces curate keeps (rejection sampling and filters).")
    max_per_prompt: int | None = option(None, help="Traces curate keeps per prompt at most (per_prompt_cap).")
    sft_tokens_mean: float | None = option(None, help="Mean tokens of one SFT example (prompt + trace + template).")
    length_cv: float | None = option(None, help="Coefficient of variation of example lengths (std / mean).")
    generate_tokens_per_s_per_node: float | None = option(None, help="Teacher output tokens/s per node.")
    prefill_tokens_per_s_per_node: float | None = option(None, help="Teacher prompt tokens/s per node.")
    sft_mfu: float | None = option(None, help="SFT model FLOPs utilization (6N + attention over peak).")
    internode_gb_s: float | None = option(None, help="Network bandwidth per GPU between nodes, GB/s.")
    offload_slowdown: float | None = option(None, help="Time factor of DeepSpeed CPU offload.")
    eval_decode_mfu: float | None = option(None, help="Eval decode FLOPs utilization (2N per token over peak).")
    eval_tokens: dict[str, float] = option({}, help="Mean response tokens per eval task (eval_tokens.aime24=9000).")
    rollout_mfu: float | None = option(None, help="opd: student sampling FLOPs utilization (2N per token).")
    teacher_prefill_mfu: float | None = option(None, help="opd: teacher scoring (prefill) FLOPs utilization.")
    opd_completion_tokens_mean: float | None = option(None, help="opd: mean tokens of one student sample.")
    sft_epochs: float | None = option(None, help="opd: epochs of the SFT it is compared with.")
    gpu_peak_tflops: float | None = option(None, help="Dense bf16 peak of a GPU not in the table, TFLOP/s.")
    gpu_memory_gb: float | None = option(None, help="Memory of a GPU not in the table, GB.")

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise DistillError("--nodes and --gpus-per-node must be at least 1")
        if self.samples is not None and self.samples < 1:
            raise DistillError(f"--samples must be at least 1, not {self.samples}")
        if self.keep_rate is not None and not 0 < self.keep_rate <= 1:
            raise DistillError(f"keep_rate must be in (0, 1], not {self.keep_rate}")
        for name in ("sft_mfu", "eval_decode_mfu", "rollout_mfu", "teacher_prefill_mfu"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise DistillError(f"{name} must be in (0, 1] (0.3 = 30% of peak), not {value}")


# Defaults of the assumptions, each with where it comes from.
DEFAULTS: dict[str, tuple[float, str]] = {
    "prompt_tokens_mean": (120, "estimate: a MATH-style problem (~100 tokens) plus R1's instruction line"),
    "keep_rate": (114 / 173, "OpenThoughts: 114k of 173k DeepSeek-R1 traces passed verification "
                  "(open-thoughts.ai/blog/scale)"),
    "length_cv": (0.75, "estimate: R1 lengths are right-skewed, mean 6K with a tail past 20K (open-r1 update #1)"),
    "sft_mfu": (0.338, "distill's reference figure: 33.8% MFU, varlen flash attention + Liger + gradient "
                "checkpointing, Qwen2.5-1.5B shape, one H100 (benchmarks/README.md, 2026-11-23)"),
    "internode_gb_s": (50.0, "one 400 Gb/s InfiniBand/EFA NIC per GPU (DGX H100, AWS P5: 3,200 Gb/s per node)"),
    "offload_slowdown": (2.0, "HF ZeRO benchmark: DeepSpeed with CPU offload 2.0x the time of without "
                         "(huggingface/blog#71, zero-deepspeed-fairscale.md)"),
    "eval_decode_mfu": (0.05, "estimate, not measured yet: long-output decode on vLLM at ~5% of peak "
                        "(replace with --from an eval run)"),
    "prefill_tokens_per_s_per_node": (73700, "DeepSeek: 73.7K input tokens/s per H800 node in production "
                                      "(open-infra-index, 2025-02 day 6), scaled by peak FLOP/s"),
    "arithmetic_tokens_per_s": (72000, "distill's arithmetic teacher: 72,772 tokens/s on 2 CPU cores (2026-12-01)"),
}


class Assumptions:
    """Each number the plan uses, with its source: --set wins, then a measured run, then the default."""

    def __init__(self, cfg: PlanConfig, measured: Measured) -> None:
        self.cfg, self.measured, self.used = cfg, measured, {}

    def get(self, name: str, default: float | None = None, source: str = "") -> float:
        given = self.cfg.eval_tokens.get(name.split(".", 1)[1]) if name.startswith("eval_tokens.") else \
            getattr(self.cfg, name, None)
        if given is not None:
            value, source = float(given), "set by you (--set)"
        elif name in self.measured.values:
            value, source = float(self.measured.values[name]), self.measured.sources[name]
        elif default is not None:
            value = default
        else:
            value, source = DEFAULTS[name]
        self.used[name] = {"value": value, "source": source}
        return value
