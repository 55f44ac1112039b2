"""The work-unit side of `distill curate`: read one unit of traces, run the row filters, stage the survivors.

    for stats in map_units(WorkerSpec.build(cfg), units, "runs/data/.curate", num_proc=2):
        ...   # one dict per finished unit: rows, dropped per reason, grader methods, contamination hits

A unit's files in the work dir (all written to a temp name and renamed; the stats file last, as the commit):
    unit-00003.rows.parquet     survivors: the SFT example + completion_key, teacher, kind (for the set filters)
    unit-00003.dropped.parquet  id, prompt_id, reason, detail of every row a row filter dropped
    unit-00003.prompts.parquet  prompt_id + MinHash signature of each surviving prompt (near-duplicate search)
    unit-00003.samples.parquet  prompt_id, id, correct, answer of every trace read, kept or not (pass_rate, select,
                                majority references)
    unit-00003.json             stats; its presence means the unit is done
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill.core.errors import DistillError
from distill.core.log import get_logger
from distill.core.manifest import atomic_path, atomic_write_text
from distill.core.preempt import ignore_stop_signals
from distill.core.protocol import THINK_CLOSE, THINK_OPEN, split_think
from distill.core.schema import SFT_EXAMPLE, conform
from distill.core.teachers import TEACHERS
from distill.curate import code_rows as curate_code
from distill.curate.decontaminate import NgramIndex, load_eval_sets
from distill.curate.dedup import completion_key
from distill.curate.dedup import prompt_signature as signature
from distill.curate.filters import FILTERS, Candidate
from distill.curate.formats import first_rows, to_traces, verdict_key
from distill.grading.answers import normalize_tags
from distill.grading.sandbox import check_sandbox

STAGED = pa.schema(list(SFT_EXAMPLE) + [("completion_key", pa.int64()), ("teacher", pa.string()),
                                        ("kind", pa.string()), ("task", pa.string()), ("verified", pa.bool_())])
DROPPED = pa.schema([("id", pa.string()), ("prompt_id", pa.string()), ("reason", pa.string()), ("detail", pa.string())])
SIGNATURES = pa.schema([("prompt_id", pa.string()), ("signature", pa.list_(pa.uint32()))])
SAMPLES = pa.schema([("prompt_id", pa.string()), ("id", pa.string()), ("correct", pa.bool_()),
                     ("answer", pa.string())])
ANSWER_FILTERS = ("no_answer", "wrong_answer")  # what answer_filter=off switches off


@dataclass
class WorkerSpec:
    """Everything a worker needs, built once in the parent (errors surface before any work starts)."""

    cfg: Any  # CurateConfig
    index: Any = None  # dedup.NgramIndex when `contaminated` is in the chain
    non_reasoning: frozenset[str] = frozenset()
    reasoning: frozenset[str] = frozenset()
    row_chain: list[str] = field(default_factory=list)
    sandbox_workers: int = 1  # sandboxes one worker process runs at once (code rows)
    references: dict[str, str] = field(default_factory=dict)  # reference=majority: prompt id -> majority answer

    @classmethod
    def build(cls, cfg, has_code: bool = False, num_proc: int = 1, references: dict[str, str] | None = None,
              grade_only: bool = False) -> WorkerSpec:
        if has_code and curate_code.wants_sandbox(cfg.filters):
            check_sandbox()  # no bubblewrap: one line naming the package, before any work starts
        elif has_code:
            get_logger().warning("the traces hold code rows (with tests) but failed_tests is not in the filter chain: "
                                 "their programs are kept without being run")

        index = None
        if "contaminated" in cfg.filters and not grade_only:
            p = cfg.contaminated
            index = NgramIndex(load_eval_sets(p.benchmarks, cfg.eval_data_dir, p.files), p.ngram)
        if cfg.tokenizer:
            token_counter(cfg.tokenizer)  # fail here, once, rather than in every worker
        return cls(
            cfg=cfg,
            index=index,
            non_reasoning=frozenset([t.name for t in TEACHERS.values() if not t.reasoning] + cfg.non_reasoning_teachers),
            reasoning=frozenset(t.name for t in TEACHERS.values() if t.reasoning),
            row_chain=[f for f in cfg.filters if FILTERS[f].kind == "row"
                       and (cfg.answer_filter or f not in ANSWER_FILTERS)],
            sandbox_workers=curate_code.sandbox_workers(num_proc),
            references=references or {},
        )


# ---------------------------------------------------------------- running units

_STATE: dict[str, Any] = {}


def _init(spec: WorkerSpec) -> None:
    _STATE.clear()
    _STATE.update(spec=spec, count=token_counter(spec.cfg.tokenizer), contamination={})


def _init_worker(spec: WorkerSpec) -> None:
    ignore_stop_signals()  # a scheduler's SIGTERM to the process group: the parent decides when to stop
    _init(spec)


def _run(unit_and_dir: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    unit, work, task = unit_and_dir
    return TASKS[task](unit, Path(work))


def map_units(spec: WorkerSpec | None, units: list[dict[str, Any]], work: str, num_proc: int,
              task: str = "filter") -> Iterator[dict]:
    """Process units, yielding each one's stats as it finishes; at most 2 x num_proc units in flight, so
    memory stays bounded however large the input. One process (num_proc=1) runs them in this one."""
    if not units:
        return
    if num_proc <= 1 or len(units) == 1:
        _init(spec)
        for unit in units:
            yield TASKS[task](unit, Path(work))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # Not fork: the parent may run threads (progress display, grader judges) that a fork would copy mid-state.
    # A forkserver imports the heavy modules once and forks every worker from that clean process.
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["distill.curate.worker", "distill.curate.dedup", "distill.curate.decontaminate", "datasketch", "pyarrow.parquet"])
    pending = list(reversed(units))
    with ProcessPoolExecutor(min(num_proc, len(units)), mp_context=ctx, initializer=_init_worker, initargs=(spec,)) as ex:
        running = set()
        try:
            while pending or running:
                while pending and len(running) < 2 * num_proc:
                    running.add(ex.submit(_run, (pending.pop(), work, task)))
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise


def process_unit(unit: dict[str, Any], work: Path) -> dict[str, Any]:
    """Filter one unit's rows and commit its staged files; returns its stats."""
    import time

    spec: WorkerSpec = _STATE["spec"]
    stats = new_stats(unit)
    started = time.process_time()
    kept, dropped, signatures = [], [], {}
    # the filters before the first code filter run row by row; the code rows left then meet the sandbox
    # together (many programs at once), and the rest of the chain runs after
    before, after = curate_code.split_chain(spec.row_chain)
    verdicts, sources = [], []
    for row in read_unit(unit):
        stats["completion_tokens"] += int(row.get("completion_tokens") or 0)
        cand = make_candidate(row, spec)
        verdicts.append([cand, *check_row(cand, spec, stats, before)])
        sources.append(row.get("source_correct"))  # the input's own verdict (trace_formats), vs ours
    if after:
        curate_code.prefetch([v[0] for v in verdicts if v[1] is None], spec.cfg.failed_tests, spec.sandbox_workers)
        for v in verdicts:
            if v[1] is None:
                v[1], v[2] = check_row(v[0], spec, stats, after, count=False)
    curate_code.count_outcomes(stats, [(cand, reason) for cand, reason, _ in verdicts])
    samples = [sample_record(cand, spec) for cand, _, _ in verdicts]
    stats["majority_graded"] = sum(cand.prompt_id in spec.references for cand, _, _ in verdicts)
    for (cand, reason, _), source_correct in zip(verdicts, sources, strict=True):
        if source_correct is not None:
            key = verdict_key(source_correct, reason, "method" in cand.grader)
            stats["source_labels"][key] = stats["source_labels"].get(key, 0) + 1
    for cand, reason, detail in verdicts:
        if reason:
            dropped.append({"id": cand.id, "prompt_id": cand.prompt_id, "reason": reason, "detail": detail})
            count_drop(stats, reason, cand.id, detail)
            continue
        kept.append(staged_row(cand, spec))
        stats["verified"][str(kept[-1]["verified"]).lower()] += 1
        if cand.prompt_id not in signatures and wants_signatures(spec):
            signatures[cand.prompt_id] = prompt_signature(cand, spec)
    stats["kept"] = len(kept)
    stats["eval_sets"] = spec.index.sizes if spec.index is not None else {}
    stats["cpu_seconds"] = round(time.process_time() - started, 3)  # this worker's own CPU (judges not included)
    stats["token_estimates"] = _STATE["count"].estimates
    _STATE["count"].estimates = 0
    commit_unit(work, unit, kept, dropped, signatures, stats, samples)
    return stats


def grade_unit(unit: dict[str, Any], work: Path) -> dict[str, Any]:
    """Only the verdict and answer of every trace of a unit, no filter: the majority vote's ballots, and the
    samples of a pass_rate.source dir. Nothing is staged: the caller keeps the (small) result."""
    spec: WorkerSpec = _STATE["spec"]
    samples = [sample_record(make_candidate(row, spec), spec) for row in read_unit(unit)]
    return {"index": unit["index"], "samples": samples}


def ballot_unit(unit: dict[str, Any], work: Path) -> dict[str, Any]:
    """The majority vote's ballots: the final answer of every trace whose prompt has no reference (none graded)."""
    spec: WorkerSpec = _STATE["spec"]
    cands = (make_candidate(row, spec) for row in read_unit(unit))
    samples = [{"prompt_id": c.prompt_id, "answer": None if c.is_code else c.final_answer}
               for c in cands if c.reference is None]
    return {"index": unit["index"], "samples": samples}


TASKS = {"filter": process_unit, "grade": grade_unit, "ballot": ballot_unit}


def sample_record(cand: Candidate, spec: WorkerSpec) -> dict[str, Any]:
    """What pass_rate and select need of every trace, whatever the filters did with it."""
    return {"prompt_id": cand.prompt_id, "id": cand.id, "correct": cand.correct(spec.cfg.wrong_answer.timeout),
            "answer": None if cand.is_code else cand.final_answer}


def new_stats(unit: dict[str, Any]) -> dict[str, Any]:
    return {"index": unit["index"], "rows": 0, "kept": 0, "dropped": Counter(), "examples": {}, "grader": Counter(),
            "contamination": {}, "completion_tokens": 0, "token_estimates": 0, "source_labels": {},
            "verified": Counter(), "majority_graded": 0}


def count_drop(stats: dict[str, Any], reason: str, row_id: str, detail: str) -> None:
    stats["dropped"][reason] += 1
    examples = stats["examples"].setdefault(reason, [])
    if len(examples) < 3:
        examples.append({"id": row_id, "detail": detail[:300]})


# ---------------------------------------------------------------- one row


def read_unit(unit: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The unit's TRACE rows: read as they are, or mapped from the unit's input format (trace_formats)."""
    layout = unit.get("layout")
    if layout is None:
        yield from read_raw(unit)
        return
    for row in read_raw(unit):
        yield from to_traces(row, layout)


def read_raw(unit: dict[str, Any]) -> Iterator[dict[str, Any]]:
    path = Path(unit["file"])
    if unit.get("json"):
        yield from first_rows(path)
        return
    if "row_groups" in unit:
        table = pq.ParquetFile(path).read_row_groups(unit["row_groups"], columns=unit["columns"])
        yield from table.to_pylist()
        return
    start, end = unit["bytes"]
    with path.open("rb") as f:
        f.seek(start)
        lineno_hint = f"{path} (bytes {start}-{end})"
        for line in f.read(end - start).splitlines():
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise DistillError(f"a line of {lineno_hint} is not valid JSON ({err.msg}); fix it") from None


def make_candidate(row: dict[str, Any], spec: WorkerSpec) -> Candidate:
    cfg = spec.cfg
    if row.get("id") is None or row.get("prompt_id") is None:
        raise DistillError(f"a trace without id/prompt_id ({str(row)[:80]}...); every trace needs both")
    completion = normalize_tags(row.get("completion") or "", cfg.think_tags, cfg.answer_tags)
    teacher = row.get("teacher") or "unknown"
    # Is this a reasoning row? It decides which filters apply (bad_think_format, the answer read after </think>):
    # a teacher known not to reason never is; a reasoning teacher always is, even when it never closed its block
    # (truncated); an unknown teacher is when its text holds a think tag.
    if teacher in spec.non_reasoning:
        is_reasoning = False
    else:
        is_reasoning = teacher in spec.reasoning or THINK_OPEN in completion or THINK_CLOSE in completion
    reasoning, answer_text = split_think(completion) if is_reasoning else (None, completion)
    problem = row.get("problem") or ""
    return Candidate(
        id=str(row["id"]), prompt_id=str(row["prompt_id"]), source=row.get("source"), teacher=teacher,
        finish_reason=row.get("finish_reason") or "error", problem=problem,
        reference=str(row["answer"]) if row.get("answer") not in (None, "")
        else spec.references.get(str(row["prompt_id"])),  # reference=majority
        user=user_turn(row.get("messages"), problem), completion=completion, is_reasoning=is_reasoning,
        reasoning=reasoning, answer_text=answer_text, count_tokens=_STATE["count"],
        prompt_tokens=int(row.get("prompt_tokens") or 0), completion_tokens=int(row.get("completion_tokens") or 0),
        tests=row.get("tests") or None, entry_point=row.get("entry_point") or None,
    )


def user_turn(messages: Any, problem: str) -> str:
    """Exactly the user message the teacher saw (the last user turn), or the bare problem when the traces
    do not record messages."""
    if isinstance(messages, str):
        messages = json.loads(messages)
    for message in reversed(messages or []):
        if message.get("role") == "user":
            return message.get("content") or ""
    return problem


def check_row(cand: Candidate, spec: WorkerSpec, stats: dict[str, Any], chain: list[str],
              count: bool = True) -> tuple[str | None, str]:
    """The first row filter of `chain` that objects: (reason, detail), or (None, "") to keep the row."""
    stats["rows"] += count
    for name in chain:
        if name == "contaminated":
            why = contamination(cand, spec, stats)
        else:
            why = FILTERS[name].check(cand, spec.cfg.params(name))
        if name == "wrong_answer" and "method" in cand.grader:
            stats["grader"][cand.grader["method"]] += 1
        if why:
            return name, why
    return None, ""


def contamination(cand: Candidate, spec: WorkerSpec, stats: dict[str, Any]) -> str | None:
    text = cand.problem or cand.user
    cache = _STATE["contamination"]
    if text not in cache:
        if len(cache) > 100_000:
            cache.clear()
        cache[text] = spec.index.match(text, spec.cfg.contaminated.min_overlap)
    hits = cache[text]
    if not hits:
        return None
    # the row counts against the benchmark it overlaps most, so the table's rows add up to the drops
    name, i, overlap = max(hits, key=lambda h: (h[2], h[0]))
    entry = stats["contamination"].setdefault(
        name, {"rows": 0, "prompts": [], "problems": [], "size": spec.index.sizes[name]})
    entry["rows"] += 1
    if cand.prompt_id not in entry["prompts"]:
        entry["prompts"].append(cand.prompt_id)
    if i not in entry["problems"]:
        entry["problems"].append(i)
    return f"shares {spec.index.n}-grams with {name} problem #{i} ({overlap:.0%} of its n-grams)"


def staged_row(cand: Candidate, spec: WorkerSpec) -> dict[str, Any]:
    return {
        "verified": bool(cand.correct(spec.cfg.wrong_answer.timeout)),
        "id": cand.id, "prompt_id": cand.prompt_id, "source": cand.source,
        "messages": [{"role": "user", "content": cand.user}, {"role": "assistant", "content": cand.assistant}],
        "num_tokens": cand.num_tokens, "completion_key": completion_key(cand.assistant), "teacher": cand.teacher,
        "kind": "reasoning" if cand.is_reasoning else "non-reasoning", "task": "code" if cand.is_code else "math",
    }


def wants_signatures(spec: WorkerSpec) -> bool:
    return "duplicate" in spec.cfg.filters and spec.cfg.duplicate.prompts


def prompt_signature(cand: Candidate, spec: WorkerSpec) -> list[int]:
    p = spec.cfg.duplicate
    return signature(cand.problem or cand.user, p.num_perm, p.shingle_words).tolist()


# ---------------------------------------------------------------- token counts


class TokenCounter:
    """num_tokens of an example: with a tokenizer, its user and assistant turns plus the chat template's own
    tokens (measured once on empty turns: some templates drop the reasoning of past assistant turns, so
    rendering whole conversations would undercount); without one, the teacher's reported counts."""

    def __init__(self, tokenizer: Any = None):
        self.tokenizer = tokenizer
        self.estimates = 0
        self.overhead = 0
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            empty = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]
            rendered = tokenizer.apply_chat_template(empty, tokenize=False)
            self.overhead = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def __call__(self, cand: Candidate) -> int:
        if self.tokenizer is not None:
            encode = self.tokenizer
            ids = encode([cand.user, cand.assistant], add_special_tokens=False)["input_ids"]
            return self.overhead + sum(len(x) for x in ids)
        if cand.prompt_tokens > 0 and cand.completion_tokens > 0:
            return cand.prompt_tokens + cand.completion_tokens
        self.estimates += 1
        return (len(cand.user) + len(cand.assistant)) // 4 + 1


def token_counter(name: str | None) -> TokenCounter:
    if not name:
        return TokenCounter()
    try:
        from transformers import AutoTokenizer

        return TokenCounter(AutoTokenizer.from_pretrained(name))
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise DistillError(f"cannot load tokenizer '{name}': {first}; pass a local tokenizer dir or hub id") from None


# ---------------------------------------------------------------- staged files


def unit_file(work: Path, unit: dict[str, Any], kind: str) -> Path:
    return work / f"unit-{unit['index']:05d}.{kind}.parquet"


def _write_atomic(table: pa.Table, path: Path, compression: str = "lz4") -> None:
    """Staging files use lz4 (written once, read back once: 5x faster to read than zstd); the dataset zstd."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression)


def commit_unit(work: Path, unit, kept, dropped, signatures, stats, samples=()) -> None:
    """Staged files first, the stats file last: a unit without stats is redone in full on resume."""
    _write_atomic(pa.Table.from_pylist(list(samples), schema=SAMPLES), unit_file(work, unit, "samples"))
    _write_atomic(pa.Table.from_pylist(kept, schema=STAGED), unit_file(work, unit, "rows"))
    _write_atomic(pa.Table.from_pylist(dropped, schema=DROPPED), unit_file(work, unit, "dropped"))
    sig_rows = [{"prompt_id": k, "signature": v} for k, v in signatures.items()]
    _write_atomic(pa.Table.from_pylist(sig_rows, schema=SIGNATURES), unit_file(work, unit, "prompts"))
    atomic_write_text(work / f"unit-{unit['index']:05d}.json", json.dumps(stats))


def read_staged(work: Path, units, columns: list[str]) -> dict[str, Any]:
    """Small columns of every unit's survivors, concatenated in unit order, plus `_sizes` (rows per unit)."""
    tables = [pq.read_table(unit_file(work, u, "rows"), columns=columns) for u in units]
    merged = pa.concat_tables(tables) if tables else pa.table({c: [] for c in columns})
    out: dict[str, Any] = {c: merged.column(c).to_numpy(zero_copy_only=False) for c in columns}
    out["_sizes"] = [t.num_rows for t in tables]
    return out


def read_signatures(work: Path, units) -> Iterator[tuple[str, Any]]:
    import numpy as np

    for unit in units:
        table = pq.read_table(unit_file(work, unit, "prompts"))
        for pid, sig in zip(table.column("prompt_id").to_pylist(), table.column("signature").to_pylist(), strict=True):
            yield pid, np.asarray(sig, dtype=np.uint32)


def write_selected(work: Path, units, keep, out_dir: Path, shard_rows: int, advance=lambda n: None,
                   extra: tuple[str, ...] = ()):
    """Copy the kept staged rows into `train-%05d.parquet` shards (SFT_EXAMPLE, plus the staged columns named
    in `extra`; an empty dataset still gets one empty shard, so that it loads); returns the num_tokens of the
    rows written."""
    import numpy as np

    out_dir.mkdir(parents=True)
    pending: list[pa.Table] = []
    index, lengths = 0, []

    def flush(table: pa.Table) -> None:
        nonlocal index
        _write_atomic(conform(table, SFT_EXAMPLE), out_dir / f"train-{index:05d}.parquet", compression="zstd")
        index += 1

    for unit, mask in zip(units, keep, strict=True):
        table = pq.read_table(unit_file(work, unit, "rows"), columns=SFT_EXAMPLE.names + list(extra))
        table = table.filter(pa.array(mask))
        lengths.append(table.column("num_tokens").to_numpy())
        advance(table.num_rows)
        pending.append(table)
        merged = pa.concat_tables(pending)
        while merged.num_rows >= shard_rows:
            flush(merged.slice(0, shard_rows))
            merged = merged.slice(shard_rows)
        pending = [merged]
    empty = pa.schema(list(SFT_EXAMPLE) + [STAGED.field(c) for c in extra]).empty_table()
    rest = pa.concat_tables(pending) if pending else empty
    if rest.num_rows or index == 0:
        flush(rest)
    return np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)


def write_ledger(work: Path, units, set_drops: list[dict[str, str]], path: Path) -> None:
    tables = [pq.read_table(unit_file(work, u, "dropped")) for u in units]
    tables.append(pa.Table.from_pylist(set_drops, schema=DROPPED))
    _write_atomic(pa.concat_tables(tables), path)



def read_samples(work: Path, units) -> Iterator[tuple[str, bool | None]]:
    """(prompt_id, correct) of every trace the units read, kept or dropped."""
    for unit in units:
        table = pq.read_table(unit_file(work, unit, "samples"), columns=["prompt_id", "correct"])
        yield from zip(table.column("prompt_id").to_pylist(), table.column("correct").to_pylist(), strict=True)
