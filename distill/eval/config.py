"""The configuration of `distill eval` (EvalConfig): import-light, read by the CLI and the
package root without loading the stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from distill.core.config import option
from distill.core.errors import DistillError


@dataclass
class LiveCodeBenchOptions:
    window: str = option("2024-08-01:2025-01-31", help="Contest dates START:END (both included) of the problems "
                         "scored; R1's window by default (arXiv:2501.12948: LiveCodeBench 2024-08 to 2025-01).")
    release: str = option("release_v5", help="Hub release of livecodebench/code_generation_lite to read "
                          "(release_v1 ... release_v6); release_v5 holds R1's window.")

    def __post_init__(self) -> None:
        from distill.eval.livecodebench import hub_files, parse_window

        parse_window(self.window)
        hub_files(self.release)


@dataclass
class EvalConfig:
    model: str = option(help="Model to evaluate: a model directory (e.g. an sft output) or a hub id. With "
                        "--backend openai, where to read the served model's tokenizer from.")
    tasks: list[str] = option(["aime", "math500"], help="Tasks, comma-separated: aime (= aime24, aime25), "
                              "aime24, aime25, math500, gpqa_diamond, livecodebench, humaneval, contests (= hmmt_feb25, "
                              "brumo25, aime26, hmmt_feb26), arithmetic, or any eval/<family>/distill_<name>.yaml by "
                              "<name>.")
    out: str | None = option(None, help="Output directory (default runs/eval/<model name>). Re-running with "
                             "the same OUT skips the tasks already finished there.")
    backend: Literal["vllm", "hf", "openai", "transformers"] | None = option(
        None, help="vllm (GPU), hf (transformers: CPU or one GPU; --backend transformers also works), openai (a served model at --base-url). "
        "Default: openai with --base-url, else vllm where installed with a GPU, else hf.")
    samples: int | None = option(None, help="Samples per problem (k); default per task: 64 AIME and the contests, "
                                 "16 LiveCodeBench, 8 GPQA Diamond, 4 MATH-500.")
    max_tokens: int = option(32768, help="Max new tokens per sample (R1 protocol: 32768). A sample that "
                             "reaches it without closing </think> counts as wrong.")
    temperature: float = option(0.6, help="Sampling temperature (R1 protocol: 0.6).")
    top_p: float = option(0.95, help="Nucleus sampling top-p (R1 protocol: 0.95).")
    limit: int | None = option(None, help="Evaluate only the first N problems of each task (for smoke tests: "
                               "the numbers are then not comparable to published ones).")
    data_dir: str | None = option(None, help="Read the eval sets from DIR/<task>.jsonl (aime24.jsonl, "
                                  "math500.jsonl: id, problem, answer; gpqa_diamond.jsonl, livecodebench.jsonl: the "
                                  "hub's columns) instead of the hub (needed offline).")
    reasoning: Literal["auto", "on", "off"] = option(
        "auto", help="Does the model think in <think> blocks? on: prefill '<think>\\n' and read the answer after "
        "</think> (the R1 protocol); off: no prefill, the last \\boxed{} of the whole response, truncated only at "
        "the token limit (a base or instruct model before distillation); auto: on when the chat template or "
        "tokenizer knows <think> or the sft manifest says it was trained on reasoning traces.")
    think_prefill: bool | None = option(None, help="Older spelling: --think-prefill = --reasoning on; "
                                        "--no-think-prefill keeps the reasoning grading but sends no '<think>\\n'.")
    default_system: Literal["keep", "drop"] = option(
        "keep", help="A system prompt the chat template adds when none is given (Qwen2.5, SmolLM2 templates do): "
        "keep (the model's own format, as it was trained) or drop (R1's protocol: no system turn at all). "
        "Either way it is said in the log and recorded in results.json.")
    baseline: str | None = option(None, help="An earlier eval dir of the base model, shown beside this one (default: "
                                  "found through the sft manifest's base model under runs/eval/<base name>).")
    published: str | None = option(None, help="Published model to compare with, by name (e.g. "
                                   "DeepSeek-R1-Distill-Qwen-1.5B); default: matched from the model's lineage.")
    seed: int = option(1234, help="Base seed of sampling (each sample of the openai backend derives its own).")
    dtype: str = option("auto", help="Weights dtype for hf/vllm (auto, bfloat16, float16, float32).")
    batch_size: int | None = option(None, help="hf backend: samples generated at once (default 8).")
    tensor_parallel: int = option(1, help="vllm: GPUs per model replica (tensor parallel).")
    data_parallel: int = option(1, help="vllm: model replicas (data parallel, through Ray).")
    gpu_memory_utilization: float | None = option(None, help="vllm: share of GPU memory for weights and KV cache "
                                                  "(default 0.9; the CPU build gets a fixed KV cache instead).")
    vllm: dict[str, Any] = option({}, help="vllm: engine arguments passed as they are, e.g. --set "
                                  "vllm.enable_prefix_caching=true --set vllm.max_num_seqs=512.")
    chat_template: str | None = option(None, help="Replace the model's chat template: a packaged R1 template "
                                       "(chatml_r1, llama3_r1, gemma_r1, mistral_r1) or a .jinja file; for a base "
                                       "model whose tokenizer has none (the 'before' row). Its end-of-turn token "
                                       "ends a sample, beside the model's own EOS.")
    budgets: list[int] = option([], help="Thinking budgets, comma-separated (256,1024,4096): each task's samples "
                                "are drawn again with thinking cut at B tokens and closed (budget forcing); "
                                "results.json gets budget_curve, the report accuracy against budget.")
    budget_answer_tokens: int = option(1024, help="--budgets: tokens a sample may write after its think block is "
                                       "closed (or after B, when it closed on its own but was still answering).")
    journal_chunk: int | None = option(None, help="Samples generated and journaled together: a killed run redoes "
                                       "at most one such chunk of the task in hand (default: hf 4 batches, vllm 512, "
                                       "openai 256).")
    trust_remote_code: bool = option(False, help="Let the model run the Python code it ships (auto_map); off by "
                                     "default: turn it on only for a source you trust.")
    max_model_len: int | None = option(None, help="vllm: context length; default the longest prompt + "
                                       "--max-tokens, so that no prompt is truncated.")
    base_url: str | None = option(None, help="openai backend: server URL, e.g. http://localhost:8000/v1.")
    served_model: str | None = option(None, help="openai backend: the model name the server knows "
                                      "(default: --model).")
    api_key_env: str | None = option(None, help="openai backend: environment variable holding the API key.")
    concurrency: int = option(64, help="openai backend: requests in flight.")
    task_dirs: list[str] = option([], help="More lm-eval task folders to search besides eval/.")
    livecodebench: LiveCodeBenchOptions = field(default_factory=LiveCodeBenchOptions, metadata={
        "help": "The livecodebench task's problem set: --set livecodebench.window=START:END, livecodebench.release."})
    force: bool = option(False, help="Replace results in OUT that were made with another protocol.")

    def __post_init__(self) -> None:
        self.tasks = [t.strip() for item in self.tasks for t in str(item).split(",") if t.strip()]
        if not self.tasks:
            raise DistillError("--tasks is empty; name at least one task, e.g. --tasks aime,math500")
        for name, value in (("--samples", self.samples), ("--limit", self.limit), ("--max-tokens", self.max_tokens)):
            if value is not None and value < 1:
                raise DistillError(f"{name} must be a positive number, not {value}")
        if self.temperature < 0:
            raise DistillError(f"--temperature must be >= 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise DistillError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.reasoning not in ("auto", "on", "off"):
            raise DistillError(f"--reasoning must be auto, on or off, not {self.reasoning!r}")
        if self.default_system not in ("keep", "drop"):
            raise DistillError(f"--default-system must be keep or drop, not {self.default_system!r}")
        self.budgets = parse_budgets(self.budgets)
        if self.budgets and self.reasoning == "off":
            raise DistillError("--budgets cuts the thinking of a model that thinks; --reasoning off has none to cut: "
                               "drop one of the two")
        if self.budget_answer_tokens < 1:
            raise DistillError(f"--set budget_answer_tokens must be at least 1, not {self.budget_answer_tokens}")
        too_long = [b for b in self.budgets if b + self.budget_answer_tokens > self.max_tokens]
        if too_long:
            raise DistillError(f"budget {too_long[0]} + budget_answer_tokens {self.budget_answer_tokens} exceeds "
                               f"--max-tokens {self.max_tokens}; lower the budget or raise --max-tokens")
        if self.reasoning == "off" and self.think_prefill:
            raise DistillError("--think-prefill opens a think block that --reasoning off does not read; drop one of "
                               "the two (--reasoning on prefills by itself)")


def parse_budgets(values: list[Any]) -> list[int]:
    """--budgets 256,1024 (or a YAML list) -> sorted distinct positive ints; anything else is one line."""
    out = set()
    for item in values:
        for part in str(item).split(","):
            part = part.strip().replace("_", "")
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise DistillError(f"--budgets takes positive token counts, comma-separated (256,1024,4096), not "
                                   f"{part!r}")
            out.add(int(part))
    return sorted(out)
