"""The configuration of `distill generate` (GenerateConfig): import-light, read by the CLI and the
package root without loading the stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from distill.core.config import option
from distill.core.errors import DistillError
from distill.generate.parts import parse_part


@dataclass
class GenerateConfig:
    prompts: str = option(help="Prompt set: a .jsonl/.json/.parquet file, a directory of them, or a hub dataset id.")
    out: str = option(help="Output directory; traces go to OUT/traces/. Re-running with the same OUT resumes.")
    teacher: str = option("deepseek-r1", help="Teacher name from the registry (`distill teachers`).")
    model: str | None = option(None, help="Concrete model (hub id, local path, or served name); default: the teacher's.")
    backend: Literal["vllm", "openai", "transformers", "hf"] | None = option(
        None, help="vllm (GPU, in-process), openai (any compatible server), transformers (small/CPU; --backend hf also works). Default: "
        "openai when --base-url is given, else vllm."
    )
    id_field: str = option("id", help="Prompt field holding a unique id (default 'id'; if absent, a content hash).")
    problem_field: str = option("problem", help="Prompt field holding the problem text.")
    answer_field: str = option("answer", help="Prompt field holding the reference final answer (optional).")
    source_field: str = option("source", help="Prompt field naming where the prompt came from (optional).")
    tests_field: str = option("tests", help="Code prompts: field with the tests (assert code, e.g. HumanEval's "
                              "'test'; or stdin/stdout cases, e.g. APPS's 'input_output'). Rows with tests are code.")
    entry_point_field: str = option("entry_point", help="Code prompts: field naming the function the tests call.")
    language_field: str = option("language", help="Code prompts: field with the answer's language (default python).")
    split: str = option("train", help="Split of a hub dataset.")
    subset: str | None = option(None, help="Config (subset) name of a hub dataset.")
    limit: int | None = option(None, help="Use only the first N prompts.")
    num_samples: int = option(1, help="Samples per prompt (k); rows are N x k.")
    max_tokens: int | None = option(None, help="Max new tokens per sample; default: the teacher's (32768 for R1).")
    temperature: float | None = option(None, help="Sampling temperature; default: the teacher's (0.6 for R1).")
    top_p: float | None = option(None, help="Nucleus sampling top-p; default: the teacher's (0.95 for R1).")
    seed: int = option(0, help="Base seed; every sample gets its own seed derived from this and its id.")
    system_prompt: str | None = option(None, help="System prompt; default: the teacher's (none for R1).")
    default_system: Literal["keep", "drop"] = option(
        "keep", help="A system prompt the teacher's chat template adds when none is given (Qwen2.5-style "
        "templates do): keep it or drop it (transformers and vllm backends). Logged and recorded either way.")
    prompt_suffix: str | None = option(None, help="Line appended to each problem; default: the teacher's "
                                       "(R1: 'Please reason step by step, and put your final answer within \\boxed{}.').")
    code_prompt_suffix: str | None = option(None, help="Line appended to each code problem (a row with tests); "
                                            "default: ask for the solution in one ```python block.")
    base_url: list[str] = option([], help="OpenAI-compatible server URL; repeat for client-side load balancing.")
    api_key_env: str | None = option(None, help="Name of the environment variable that holds the API key.")
    concurrency: int = option(64, help="Requests in flight at once (openai backend).")
    request_timeout: float = option(3600.0, help="Seconds before one request is abandoned and retried (openai).")
    max_retries: int = option(8, help="Retries of a request on 429/5xx/timeouts before it is left for a re-run.")
    retry_backoff_s: float = option(1.0, help="Base of the exponential retry backoff in seconds (full jitter, "
                                    "capped at 60 s; a server's Retry-After wins).")
    tensor_parallel: int | None = option(None, help="vLLM tensor parallel size; default: the teacher's hint.")
    pipeline_parallel: int | None = option(None, help="vLLM pipeline parallel size (across nodes via Ray).")
    data_parallel: int = option(1, help="vLLM engine replicas on this node, on disjoint GPUs.")
    max_model_len: int | None = option(None, help="vLLM context length; default: the teacher's hint for its own "
                                       "model, else the model's own limit.")
    batch_size: int | None = option(None, help="Requests in a local engine at once (transformers: 8 per batch; "
                                    "vllm: 2048 in flight, refilled as they finish).")
    dtype: str = option("auto", help="Weights dtype for local backends (auto, bfloat16, float16, float32).")
    gpu_type: str | None = option(None, help="GPU type the teacher's serving hints are read for (h100, h200, ...); "
                                  "default: detected.")
    serving_hints: bool | None = option(None, help="Apply the teacher's serving hints (tensor/pipeline sizes); "
                                        "default: only when --model is the teacher's own model.")
    trust_remote_code: bool = option(False, help="Let a model run the Python code it ships (auto_map); off by "
                                     "default: turn it on only for a source you trust.")
    vllm: dict[str, Any] = option({}, help="vLLM engine arguments, passed as they are: --set "
                                  "vllm.gpu_memory_utilization=0.85 --set vllm.enable_prefix_caching=true.")
    shard_rows: int = option(1000, help="Rows per output shard.")
    force: bool = option(False, help="Resume even though the teacher or sampling config changed.")
    part: str | None = option(None, help="I/N (0-based): generate only the I-th of N disjoint slices of the rows, "
                              "so N runs (a Slurm array) fill one OUT together; each part resumes on its own.")
    stop_grace_s: float = option(30.0, help="After SIGTERM (preemption, scancel): seconds until the process exits "
                                 "143, having committed every finished row; requests still running then are left "
                                 "for the re-run.")

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise DistillError(f"--num-samples must be at least 1, not {self.num_samples}")
        if self.limit is not None and self.limit < 1:
            raise DistillError(f"--limit must be a positive number of prompts, not {self.limit}")
        if self.temperature is not None and self.temperature < 0:
            raise DistillError(f"--temperature must be >= 0, not {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise DistillError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise DistillError(f"--max-tokens must be positive, not {self.max_tokens}")
        if self.concurrency < 1:
            raise DistillError(f"--concurrency must be at least 1, not {self.concurrency}")
        if self.part is not None:
            parse_part(self.part)  # a malformed I/N fails here, before anything is loaded
        if self.stop_grace_s <= 0:
            raise DistillError(f"--stop-grace must be a positive number of seconds, not {self.stop_grace_s}")
