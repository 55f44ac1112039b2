"""Stage 1, `distill generate`: prompts -> teacher traces, resumable.

    distill generate --teacher deepseek-r1 --prompts prompts.jsonl --out runs/gen --base-url http://node1:8000/v1
    generate(GenerateConfig(teacher="deepseek-r1", prompts="prompts.jsonl", out="runs/gen", base_url=[...]))

Reads a prompt set (PROMPT schema: a file or a hub id). Writes `OUT/traces/traces-%05d.parquet` (TRACE schema,
one row per prompt x sample, id "{prompt_id}/{sample}") and `OUT/manifest.json`. Re-running with the same
`--out` skips every id already written; a changed teacher or sampling config is refused unless --force.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distill.config import option, to_dict
from distill.errors import DistillError


@dataclass
class GenerateConfig:
    prompts: str = option(help="Prompt set: a .jsonl/.json/.parquet file, a directory of them, or a hub dataset id.")
    out: str = option(help="Output directory; traces go to OUT/traces/. Re-running with the same OUT resumes.")
    teacher: str = option("deepseek-r1", help="Teacher name from the registry (`distill teachers`).")
    model: str | None = option(None, help="Concrete model (hub id, local path, or served name); default: the teacher's.")
    backend: Literal["vllm", "openai", "transformers"] | None = option(
        None, help="vllm (GPU, in-process), openai (any compatible server), transformers (small/CPU). Default: "
        "openai when --base-url is given, else vllm."
    )
    id_field: str = option("id", help="Prompt field holding a unique id (default 'id'; if absent, a content hash).")
    problem_field: str = option("problem", help="Prompt field holding the problem text.")
    answer_field: str = option("answer", help="Prompt field holding the reference final answer (optional).")
    source_field: str = option("source", help="Prompt field naming where the prompt came from (optional).")
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
    max_model_len: int | None = option(None, help="vLLM context length; default: the teacher's hint.")
    batch_size: int | None = option(None, help="Requests handed to a local engine at once (transformers: 8, vllm: 2048).")
    dtype: str = option("auto", help="Weights dtype for local backends (auto, bfloat16, float16, float32).")
    gpu_type: str = option("h100", help="GPU type the teacher's serving hints are read for (h100, h200, ...).")
    shard_rows: int = option(1000, help="Rows per output shard.")
    force: bool = option(False, help="Resume even though the teacher or sampling config changed.")

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


def generate(cfg: GenerateConfig) -> Path:
    from distill.io import DirLock, ShardWriter, is_complete, now, write_manifest
    from distill.log import get_logger
    from distill.prompts import load_prompts
    from distill.teachers import get_teacher

    # ---------------------------------------------------------------- resolve the run
    teacher = get_teacher(cfg.teacher)
    sampling = resolve_sampling(cfg, teacher)
    prompts = load_prompts(cfg.prompts, cfg.id_field, cfg.problem_field, cfg.answer_field, cfg.source_field,
                           cfg.split, cfg.subset, cfg.limit)
    out = Path(cfg.out)
    started = now()
    with DirLock(out, "distill generate"), ExitStack() as stack:
        history = check_resume(out, sampling, cfg.force)
        # ------------------------------------------------------------ what is left to do
        writer = stack.enter_context(ShardWriter(out / "traces", "traces", trace_schema(prompts), cfg.shard_rows))
        todo = [(i, s) for i in range(prompts.num_rows) for s in range(cfg.num_samples)
                if f"{prompts['id'][i].as_py()}/{s}" not in writer]
        manifest = dict(stage="generate", config={**to_dict(cfg), "resolved": sampling}, started_at=started,
                        extra={"sampling_history": history})
        # ------------------------------------------------------------ generate
        stats = None
        if todo:
            backend = open_teacher(cfg, teacher, sampling)  # fails (unreachable server...) before anything is written
            write_manifest(out, counts=run_counts(out, prompts, cfg, writer, None), status="running", **manifest)
            stats = run_teacher(backend, sampling, teacher, prompts, todo, writer)
            manifest["extra"]["prompt_format"] = getattr(backend, "prompt_format", None)  # what the template sent
        else:
            get_logger().info(f"all {prompts.num_rows * cfg.num_samples:,} rows already in {out}; nothing to do")
        writer.close()
        counts = run_counts(out, prompts, cfg, writer, stats)
        status = "complete" if counts["rows_missing"] == 0 else "incomplete"
        # a re-run that added nothing leaves a complete manifest as it was: later stages hold its hash
        if todo or not is_complete(out):
            write_manifest(out, counts=counts, status=status, **manifest)
    print_generate_summary(out, counts, status)
    return out


def resolve_sampling(cfg: GenerateConfig, teacher) -> dict[str, Any]:
    """The teacher's defaults with this run's overrides: everything that decides what the teacher writes."""
    from distill.io import spelled_out

    def pick(value, default):
        return default if value is None else value

    return {
        "teacher": teacher.name,
        "model": spelled_out(cfg.model or teacher.model_id),  # a local path, absolute: resumable from anywhere
        "temperature": pick(cfg.temperature, teacher.temperature),
        "top_p": pick(cfg.top_p, teacher.top_p),
        "max_tokens": pick(cfg.max_tokens, teacher.max_tokens),
        "system_prompt": pick(cfg.system_prompt, teacher.system_prompt) or None,
        "prompt_suffix": pick(cfg.prompt_suffix, teacher.prompt_suffix),
        "seed": cfg.seed,
        **({"default_system": "drop"} if cfg.default_system == "drop" else {}),  # keep: as every earlier run
    }


def check_resume(out: Path, sampling: dict[str, Any], force: bool) -> list[dict[str, Any]]:
    """Refuse to add rows made with another teacher or sampling to an existing run, unless forced."""
    from distill.io import read_manifest

    previous = read_manifest(out)
    if not previous or previous.get("stage") != "generate":
        if previous:
            raise DistillError(f"{out} holds a '{previous.get('stage')}' stage, not generate output; choose another --out")
        return [sampling]
    history = previous.get("sampling_history") or [previous.get("config", {}).get("resolved", {})]
    before = history[-1]
    changed = {k: (before.get(k), v) for k, v in sampling.items() if before.get(k) != v}
    if changed and not force:
        what = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise DistillError(
            f"{out} was generated with another config ({what}); use a new --out, or --force to add rows made with "
            "the new config to the same run"
        )
    return history + [sampling] if changed else history


def trace_schema(prompts):
    """TRACE plus the prompt set's extra fields, which are carried through untouched."""
    import pyarrow as pa

    from distill.schema import TRACE

    extra = [prompts.schema.field(n) for n in prompts.column_names if n not in TRACE.names]
    return pa.schema(list(TRACE) + extra)


def sample_seed(base: int, row_id: str) -> int:
    """A per-sample seed that depends only on the run seed and the row id: a resumed run samples the same."""
    return int.from_bytes(hashlib.sha256(f"{base}:{row_id}".encode()).digest()[:4], "little")


def open_teacher(cfg: GenerateConfig, teacher, sampling):
    from distill.backends import choose_backend, open_backend

    backend_name = choose_backend(cfg.backend or teacher.backend, bool(cfg.base_url))
    return open_backend(backend_name, backend_options(cfg, teacher, sampling))


def run_teacher(backend, sampling, teacher, prompts, todo, writer) -> dict[str, Any]:
    """Send every pending (prompt, sample) to the backend and journal each finished row as it arrives."""
    import time

    from distill.backends import Request
    from distill.log import get_logger, progress
    from distill.prompts import build_messages

    backend_name = backend.name
    rows = prompts.to_pylist()
    messages = {}

    def requests():
        for i, s in todo:
            pid = rows[i]["id"]
            if i not in messages:
                messages[i] = build_messages(rows[i]["problem"], sampling["prompt_suffix"], sampling["system_prompt"])
            yield Request(f"{pid}/{s}", messages[i], sampling["max_tokens"], sampling["temperature"],
                          sampling["top_p"], sample_seed(sampling["seed"], f"{pid}/{s}"))

    index = {f"{rows[i]['id']}/{s}": (i, s) for i, s in todo}
    stats = {"backend": backend_name, "model": backend.model, "written": 0, "errors": 0, "failed": 0,
             "completion_tokens": 0, "interrupted": False}
    reasons: Counter[str] = Counter()  # why requests failed, so that 500 error rows are not a mystery
    start = time.monotonic()
    try:
        with progress(f"generate ({backend_name})", total=len(todo), unit="rows") as bar:
            for done in backend.generate(requests()):
                bar.advance(1, tokens=done.completion_tokens)
                if done.error:
                    note_error(reasons, done)
                if done.retryable:
                    stats["failed"] += 1
                    continue
                i, s = index[done.id]
                writer.add(trace_row(rows[i], s, messages[i], done, teacher.name))
                stats["written"] += 1
                stats["errors"] += done.finish_reason == "error"
                stats["completion_tokens"] += done.completion_tokens
    except KeyboardInterrupt:
        stats["interrupted"] = True
        get_logger().warning("interrupted: finished rows are kept; re-run the same command to resume")
    finally:
        backend.close()
    stats.update(getattr(backend, "stats", {}))  # e.g. the openai backend's retries
    if reasons:
        stats["error_messages"] = dict(reasons.most_common(5))
    stats["seconds"] = round(time.monotonic() - start, 2)
    return stats


def note_error(reasons: Counter[str], done) -> None:
    """Count a failed request by its message; say each new kind of failure once, as it first happens."""
    from distill.log import get_logger

    message = " ".join(str(done.error).split())[:300]
    if message not in reasons and len(reasons) < 5:
        what = "will be retried on a re-run" if done.retryable else "written as an error row"
        get_logger().warning(f"{done.id}: {message} ({what}; later requests failing the same way are counted)")
    reasons[message] += 1


def backend_options(cfg: GenerateConfig, teacher, sampling):
    from distill.backends import BackendOptions

    hint = teacher.serving.get(cfg.gpu_type.lower(), {})
    return BackendOptions(
        model=sampling["model"], base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
        request_timeout=cfg.request_timeout, max_retries=cfg.max_retries, retry_backoff_s=cfg.retry_backoff_s,
        tensor_parallel=cfg.tensor_parallel or hint.get("tensor_parallel", 1),
        pipeline_parallel=cfg.pipeline_parallel or hint.get("pipeline_parallel", 1),
        data_parallel=cfg.data_parallel, max_model_len=cfg.max_model_len or teacher.max_model_len,
        batch_size=cfg.batch_size, dtype=cfg.dtype, seed=cfg.seed, default_system=cfg.default_system,
    )


def trace_row(prompt: dict[str, Any], sample: int, messages, done, teacher: str) -> dict[str, Any]:
    extras = {k: v for k, v in prompt.items() if k not in ("id", "problem", "answer", "source")}
    return {
        "id": f"{prompt['id']}/{sample}",
        "prompt_id": prompt["id"],
        "sample": sample,
        "problem": prompt["problem"],
        "answer": prompt["answer"],
        "source": prompt["source"],
        "messages": messages,
        "completion": done.text,
        "finish_reason": done.finish_reason,
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "teacher": teacher,
        "model": done.model,
        **extras,
    }


def run_counts(out: Path, prompts, cfg: GenerateConfig, writer, stats) -> dict[str, Any]:
    """Counts over the whole output directory (earlier runs included) plus this run's own figures."""
    from distill.io import read_shards

    table = read_shards(out / "traces", "traces", columns=["finish_reason", "completion_tokens"])
    expected = prompts.num_rows * cfg.num_samples
    reasons = Counter(table.column("finish_reason").to_pylist()) if table.num_rows else Counter()
    tokens = sum(table.column("completion_tokens").to_pylist()) if table.num_rows else 0
    counts = {
        "prompts": prompts.num_rows,
        "samples_per_prompt": cfg.num_samples,
        "rows_expected": expected,
        "rows": table.num_rows,
        "rows_missing": max(0, expected - table.num_rows),
        "finish_reasons": dict(reasons),
        "completion_tokens": tokens,
        "resumed_rows": writer.resumed_rows,
        "recovered_from_journal": writer.recovered_rows,
    }
    if stats:
        rate = stats["completion_tokens"] / stats["seconds"] if stats["seconds"] else 0.0
        counts["this_run"] = {**stats, "tokens_per_s": round(rate, 1)}
    return counts


def print_generate_summary(out: Path, counts: dict[str, Any], status: str) -> None:
    from distill.log import fmt_duration, print_summary

    run = counts.get("this_run", {})
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(counts["finish_reasons"].items())) or "-"
    rows = {
        "output": str(out / "traces"),
        "status": status,
        "rows": f"{counts['rows']:,} / {counts['rows_expected']:,}",
        "written this run": run.get("written", 0),
        "resumed (already there)": counts["resumed_rows"],
        "finish reasons": reasons,
    }
    if run:
        rows["backend"] = f"{run['backend']} ({run['model']})"
        rows["tokens/s"] = f"{run['tokens_per_s']:,.0f}"
        rows["wall time"] = fmt_duration(run["seconds"])
        if run["failed"]:
            rows["failed after retries"] = f"{run['failed']:,} (re-run the same command to retry them)"
        if run.get("error_messages"):
            message, n = next(iter(run["error_messages"].items()))
            rows["most common error"] = f"{n:,} x {message[:90]}{'...' if len(message) > 90 else ''}"
    print_summary("distill generate", rows)
