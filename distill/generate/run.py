"""Stage 1, `distill generate`: prompts -> teacher traces, resumable.

    distill generate --teacher deepseek-r1 --prompts prompts.jsonl --out runs/gen --base-url http://node1:8000/v1
    generate(GenerateConfig(teacher="deepseek-r1", prompts="prompts.jsonl", out="runs/gen", base_url=[...]))

Reads a prompt set (PROMPT schema: a file or a hub id). Writes `OUT/traces/traces-%05d.parquet` (TRACE schema,
one row per prompt x sample, id "{prompt_id}/{sample}") and `OUT/manifest.json`. Re-running with the same
`--out` skips every id already written; a changed teacher or sampling config is refused unless --force.
"""

from __future__ import annotations

import signal
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from distill.core.config import to_dict
from distill.core.errors import DistillError, Interrupted
from distill.core.gpus import detect_gpus
from distill.core.log import fmt_duration, get_logger, print_summary, progress
from distill.core.manifest import DirLock, is_complete, now, read_manifest, spelled_out, write_manifest
from distill.core.preempt import GraceExpired, StopOnSignal
from distill.core.protocol import build_messages, sample_seed
from distill.core.schema import CODE, TRACE
from distill.core.shards import ShardWriter, read_shards
from distill.core.stage_dirs import TRACES
from distill.core.teachers import get_teacher
from distill.core.vllm_args import check_engine_args, is_cpu_build, require_vllm
from distill.generate.backends import BackendOptions, Request, choose_backend, open_backend
from distill.generate.config import GenerateConfig
from distill.generate.parts import check_layout, parse_part, part_dir, update_whole
from distill.generate.prompts import load_prompts
from distill.generate.replicas import Layout, check_fits, is_teachers_model, replica_layout


def run(cfg: GenerateConfig) -> Path:
    # ---------------------------------------------------------------- resolve the run
    teacher = get_teacher(cfg.teacher)
    sampling = resolve_sampling(cfg, teacher)
    prompts = load_prompts(cfg.prompts, cfg.id_field, cfg.problem_field, cfg.answer_field, cfg.source_field,
                           cfg.split, cfg.subset, cfg.limit, cfg.tests_field, cfg.entry_point_field, cfg.language_field)
    if "tests" in prompts.column_names:  # only sets with code rows: a math run resumes with its config unchanged
        sampling["code_prompt_suffix"] = cfg.code_prompt_suffix or teacher.code_prompt_suffix
    whole, part = Path(cfg.out), parse_part(cfg.part) if cfg.part else None
    check_layout(whole, part)  # a part of another split, or a part into a single run's OUT: refused
    out = part_dir(whole, part) if part else whole  # a part is a generate dir of its own under OUT/parts/
    started = now()
    with DirLock(out, f"distill generate{f' --part {part}' if part else ''}"), ExitStack() as stack:
        stop = stack.enter_context(StopOnSignal(inflight_grace(cfg.stop_grace_s), "the requests in flight"))
        if part:
            check_resume(whole, sampling, cfg.force)  # every part samples the same way
        history = check_resume(out, sampling, cfg.force)
        # ------------------------------------------------------------ what is left to do
        writer = stack.enter_context(ShardWriter(out / TRACES, TRACES, trace_schema(prompts), cfg.shard_rows))
        work = [(i, s) for i in range(prompts.num_rows) for s in range(cfg.num_samples)
                if part is None or part.holds(f"{prompts['id'][i].as_py()}/{s}")]
        todo = [(i, s) for i, s in work if f"{prompts['id'][i].as_py()}/{s}" not in writer]
        manifest = dict(stage="generate", config={**to_dict(cfg), "resolved": sampling}, started_at=started,
                        extra={"sampling_history": history})
        # ------------------------------------------------------------ generate
        stats = None
        if todo:
            try:
                backend = open_teacher(cfg, teacher, sampling)  # fails (unreachable server...) before any write
                write_manifest(out, counts=run_counts(out, len(work), prompts, cfg, writer, None), status="running",
                               **manifest)
                if part:
                    update_whole(whole, part, manifest["config"], started, manifest["extra"])
                stats = run_teacher(backend, sampling, teacher, prompts, todo, writer, stop)
                # what was sent; None for the openai backend: the server renders the chat (/chat/completions), so
                # its template decides the system turn and --default-system cannot apply
                manifest["extra"]["prompt_format"] = getattr(backend, "prompt_format", None)
            except GraceExpired:  # stopped while the teacher was still loading
                stats = None
        else:
            get_logger().info(f"all {len(work):,} rows already in {out}; nothing to do")
        stop.disarm()  # the commit below must not be cut short by the grace timer
        writer.close()
        counts = run_counts(out, len(work), prompts, cfg, writer, stats)
        status = "complete" if counts["rows_missing"] == 0 else "incomplete"
        interrupted = stop.signum or (stats or {}).get("interrupted")
        if interrupted and status != "complete":
            status = "interrupted"
        # a re-run that added nothing leaves a complete manifest as it was: later stages hold its hash
        if todo or not is_complete(out):
            write_manifest(out, counts=counts, status=status, **manifest)
        whole_status = update_whole(whole, part, manifest["config"], started, manifest["extra"]) if part else None
    print_generate_summary(out, counts, status, whole if part else None, whole_status)
    if status == "interrupted":
        raise Interrupted(interrupted, f"{counts['rows']:,} of {counts['rows_expected']:,} rows are committed in "
                          f"{out}; re-run the same command to generate the other {counts['rows_missing']:,}")
    return out


def inflight_grace(grace_s: float) -> float:
    """How long requests in flight may still finish after SIGTERM: the grace less a reserve for committing
    the shard, closing the backend and writing the manifest, so the process is gone within `grace_s`."""
    return max(grace_s - min(5.0, 0.25 * grace_s), 0.01)


def resolve_sampling(cfg: GenerateConfig, teacher) -> dict[str, Any]:
    """The teacher's defaults with this run's overrides: everything that decides what the teacher writes."""
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
    """TRACE, then the CODE fields of a set with code prompts, then the prompt set's other fields, which are
    carried through untouched."""
    import pyarrow as pa

    code = [f for f in CODE if f.name in prompts.column_names]
    extra = [prompts.schema.field(n) for n in prompts.column_names if n not in TRACE.names and n not in CODE.names]
    return pa.schema(list(TRACE) + code + extra)


def open_teacher(cfg: GenerateConfig, teacher, sampling):
    backend_name = choose_backend(cfg.backend or teacher.backend, bool(cfg.base_url))
    if cfg.vllm and backend_name != "vllm":
        raise DistillError(f"--set vllm.* is for --backend vllm, not {backend_name}; drop it or choose the vllm "
                           "backend")
    return open_backend(backend_name, backend_options(cfg, teacher, sampling, backend_name))


def run_teacher(backend, sampling, teacher, prompts, todo, writer, stop=None) -> dict[str, Any]:
    """Send every pending (prompt, sample) to the backend and journal each finished row as it arrives. After a
    stop request (SIGTERM) nothing more is sent; what is in flight may finish until the grace is spent."""
    import time

    backend_name = backend.name
    rows = prompts.to_pylist()
    messages = {}

    def requests():
        for i, s in todo:
            if stop is not None and stop.requested:
                return
            pid = rows[i]["id"]
            if i not in messages:
                suffix = sampling["code_prompt_suffix"] if rows[i].get("tests") else sampling["prompt_suffix"]
                messages[i] = build_messages(rows[i]["problem"], suffix, sampling["system_prompt"])
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
        stats["interrupted"] = int(signal.SIGINT)
        get_logger().warning("interrupted: finished rows are kept; re-run the same command to resume")
    except GraceExpired as err:
        stats["interrupted"] = int(stop.signum if stop is not None and stop.signum else signal.SIGTERM)
        get_logger().warning(f"{err}: requests still in flight are left for the re-run")
    finally:
        backend.close()
    if stop is not None and stop.signum:
        stats["interrupted"] = int(stop.signum)
    stats.update(getattr(backend, "stats", {}))  # e.g. the openai backend's retries
    if reasons:
        stats["error_messages"] = dict(reasons.most_common(5))
    stats["seconds"] = round(time.monotonic() - start, 2)
    return stats


def note_error(reasons: Counter[str], done) -> None:
    """Count a failed request by its message; say each new kind of failure once, as it first happens."""
    message = " ".join(str(done.error).split())[:300]
    if message not in reasons and len(reasons) < 5:
        what = "will be retried on a re-run" if done.retryable else "written as an error row"
        get_logger().warning(f"{done.id}: {message} ({what}; later requests failing the same way are counted)")
    reasons[message] += 1


def backend_options(cfg: GenerateConfig, teacher, sampling, backend_name: str = "vllm"):
    layout = engine_layout(cfg, teacher, sampling["model"]) if backend_name == "vllm" else Layout(1, 1)
    # the teacher's context length is sized for its own traces; another model keeps its own limit
    own = is_teachers_model(sampling["model"], teacher.model_id)
    return BackendOptions(
        model=sampling["model"], base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
        request_timeout=cfg.request_timeout, max_retries=cfg.max_retries, retry_backoff_s=cfg.retry_backoff_s,
        tensor_parallel=layout.tensor_parallel, pipeline_parallel=layout.pipeline_parallel,
        data_parallel=cfg.data_parallel, max_model_len=cfg.max_model_len or (teacher.max_model_len if own else None),
        batch_size=cfg.batch_size, dtype=cfg.dtype, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code,
        engine_args=dict(cfg.vllm), default_system=cfg.default_system,
    )


def engine_layout(cfg: GenerateConfig, teacher, model: str):
    """Tensor/pipeline sizes for the in-process engine, checked against the GPUs this node has."""
    require_vllm()
    check_engine_args(cfg.vllm)  # a typo is said before anything starts
    gpus = detect_gpus()
    layout = replica_layout(teacher, model, gpus, cfg.tensor_parallel, cfg.pipeline_parallel, cfg.gpu_type,
                            cfg.serving_hints)
    check_fits(layout, cfg.data_parallel, gpus, is_cpu_build())
    get_logger().info(f"vLLM on {gpus.describe()}: tensor parallel {layout.tensor_parallel} x pipeline parallel "
                      f"{layout.pipeline_parallel} ({layout.source}), data parallel {cfg.data_parallel}")
    return layout


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


def run_counts(out: Path, expected: int, prompts, cfg: GenerateConfig, writer, stats) -> dict[str, Any]:
    """Counts over the whole output directory (earlier runs included) plus this run's own figures; `expected`
    is the rows of this run's slice (all prompts x samples without --part)."""
    table = read_shards(out / TRACES, TRACES, columns=["finish_reason", "completion_tokens"])
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


def print_generate_summary(out: Path, counts: dict[str, Any], status: str, whole: Path | None = None,
                           whole_status: str | None = None) -> None:
    run = counts.get("this_run", {})
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(counts["finish_reasons"].items())) or "-"
    rows = {
        "output": str(out / TRACES),
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
    if whole is not None:
        entries = (read_manifest(whole) or {}).get("parts", {})
        done = [i for i, e in entries.items() if e["status"] == "complete"]
        rows["parts complete"] = f"{len(done)} / {len(entries)}" + (" (curate can start)" if whole_status == "complete"
                                                                     else "")
    print_summary("distill generate", rows)
