"""Stage 2, `distill curate`: teacher traces -> the SFT dataset, by rejection sampling and filtering.

    distill curate runs/gen --out runs/data [--config recipes/curate/r1_math.yaml] [--set too_long.max_tokens=16384]
    curate(CurateConfig(src="runs/gen", out="runs/data", eval_data_dir="../shared/data"))

Reads a generate directory (its `traces/` shards and manifest), a directory of trace shards, or one
.parquet/.jsonl file in the TRACE schema; or a published trace set (files, a directory, a hub dataset id) in one
of the input formats of distill/curate/formats.py, mapped onto TRACE as it is read. Writes `OUT/data/train-%05d.parquet` (SFT_EXAMPLE schema; loads with
`datasets.load_dataset(OUT)`), `OUT/rejected.parquet` (id, prompt_id, reason, detail for every dropped row),
`OUT/curation_report.json`, the dataset card `OUT/README.md` with `OUT/token_lengths.png`, and `OUT/manifest.json`.

How it scales: the input is cut into work units (a shard, or ~unit_rows rows of a big file). Worker processes
run the row filters on one unit at a time and stage its survivors under `OUT/.curate/`; a unit is committed by
its stats file, written last, so a killed run resumes without redoing finished units. Only small columns
(ids, hashes, token counts, prompt MinHashes) of the survivors are then held at once, for the set filters
(duplicates, per-prompt cap), before the survivors are copied into the output shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from distill.core.config import to_dict
from distill.core.errors import DistillError, Interrupted
from distill.core.log import get_logger, progress
from distill.core.manifest import MANIFEST, DirLock, atomic_write_text, now, read_manifest, spelled_out, write_manifest
from distill.core.preempt import StopOnSignal
from distill.core.schema import CODE, TRACE, validate
from distill.core.shards import read_parquet
from distill.core.stage_dirs import CURATION_REPORT, DATA, REJECTED, TRACES, is_parted, part_shards, shard_paths
from distill.curate import worker
from distill.curate.config import CurateConfig
from distill.curate.dedup import near_duplicate_prompts, over_cap
from distill.curate.filters import (
    FILTERS,
    DuplicateParams,
    PassRateParams,
    PerPromptCapParams,
)
from distill.curate.formats import (
    TRACE_REQUIRED,
    Source,
    file_columns,
    first_rows,
    input_record,
    load_hub,
    resolve_layout,
    write_hub,
)
from distill.curate.report import Selection, build_report, print_curate_summary, write_card
from distill.curate.selection import choose, majority_references, pass_rates

WORK = ".curate"
# trace columns curate reads besides TRACE_REQUIRED; the rest of TRACE (sample, model, ...) is not needed and may be absent
OPTIONAL = ("problem", "answer", "source", "messages", "teacher", "prompt_tokens", "completion_tokens",
            "tests", "entry_point", "language")  # the last three: code rows (schema.CODE)
# curate's own outputs in OUT, removed by --force (nothing else there is touched)
MAJORITY = "majority_references.jsonl"  # reference=majority: each voted prompt's answer, votes, agreement
OUTPUTS = (DATA, REJECTED, CURATION_REPORT, "README.md", "token_lengths.png", MANIFEST, MAJORITY, WORK)


def run(cfg: CurateConfig) -> Path:
    started = now()
    # ---------------------------------------------------------------- inputs and the work plan
    source = find_source(cfg.src, cfg.split, cfg.subset, cfg.allow_incomplete)
    source.layout = input_layout(source, cfg)
    out = Path(cfg.out)
    check_out(out, source)
    with DirLock(out, "distill curate"), StopOnSignal(what="the work units in hand") as stop:
        plan = make_plan(out, cfg, source)
        if plan is None:
            report = json.loads((out / CURATION_REPORT).read_text())
            print_curate_summary(out, report, already_done=True)
            return out
        if source.layout.format != "trace":  # said once, when the work starts: what was detected, how it maps
            get_logger().info(source.layout.describe())
        manifest = dict(stage="curate", config=to_dict(cfg), inputs=source.lineage_inputs, started_at=started,
                        extra={"input_fingerprint": plan["fingerprint"], "input": input_record(source.layout)})
        write_manifest(out, status="running", **manifest)
        # ------------------------------------------------------------ references by majority vote, if asked
        majority = majority_pass(out, cfg, plan)
        # ------------------------------------------------------------ row filters, in parallel, resumable
        unit_stats = run_units(out, cfg, plan, stop, {k: v["answer"] for k, v in majority.items() if v["answer"]})
        if stop.requested:  # the finished units are committed: the re-run picks up from them
            stop_curate(out, manifest, plan, unit_stats, stop.signum)
        # ------------------------------------------------------------ set filters over the survivors
        selection = select(out, cfg, plan, majority)
        if stop.requested:
            stop_curate(out, manifest, plan, unit_stats, stop.signum)
        # ------------------------------------------------------------ output, report, card
        lengths = write_dataset(out, cfg, plan, selection)
        report = build_report(cfg, source, plan, unit_stats, selection, lengths, started)
        write_card(out, cfg, source, report, lengths)
        manifest["extra"]["selection"] = report["selection"]  # pass rates, select step, verified, majority
        write_manifest(out, status="complete", counts=report["counts"], **manifest)
        shutil.rmtree(out / WORK, ignore_errors=True)
    print_curate_summary(out, report)
    return out


INPUT_SUFFIXES = (".parquet", ".jsonl", ".json")


def find_source(src: str, split: str = "train", subset: str | None = None, allow_incomplete: bool = False) -> Source:
    """Resolve SRC to its trace files (or a hub dataset); a directory without a manifest only means the lineage
    says unknown. A generate OUT filled by parts (--part I/N) gives every finished part's shards."""
    path = Path(src).expanduser()
    if path.is_dir() and is_parted(path):  # generate --part I/N: the shards of every complete part
        return Source(part_shards(path, allow_incomplete), path, [str(path)])
    if path.is_file():
        if path.suffix not in INPUT_SUFFIXES:
            raise DistillError(f"'{src}' is not a .parquet, .jsonl or .json trace file; pass a generate output "
                               "directory, trace files or a hub dataset id")
        return Source([path], None, [])
    if not path.is_dir():
        return Source([], None, [], hub=load_hub(src, split, subset))
    manifest = read_manifest(path)
    if manifest and manifest.get("stage") not in (None, "generate"):
        raise DistillError(f"'{src}' holds '{manifest['stage']}' output, not traces; pass a generate directory")
    shard_dir = path / TRACES if (path / TRACES).is_dir() else path
    # a dataset repo cloned from the hub keeps its files a level down (data/train-*.parquet)
    files = shard_paths(shard_dir) or sorted(
        p for p in shard_dir.iterdir() if p.suffix in INPUT_SUFFIXES and not p.name.startswith(".")
    ) or sorted(p for p in shard_dir.rglob("*") if p.suffix in INPUT_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(shard_dir).parts))
    if not files:
        raise DistillError(f"no trace shards in '{src}' (looked for traces/*.parquet, *.parquet, *.jsonl, *.json); "
                           "run distill generate first or pass a trace file")
    return Source(files, path if manifest else None, [str(path)] if manifest else [])


def check_out(out: Path, source: Source) -> None:
    resolved = out.resolve()
    for f in source.files:
        if resolved == f.resolve().parent or resolved in f.resolve().parents:
            raise DistillError(f"--out {out} holds the input traces; choose another output directory")
    manifest = read_manifest(out)
    if manifest and manifest.get("stage") != "curate":
        raise DistillError(f"{out} holds '{manifest.get('stage')}' output; choose another --out for curate")


def input_layout(source: Source, cfg: CurateConfig):
    """The input format of SRC and how its fields map onto TRACE (distill/curate/formats.py); distill's own
    traces are validated against the schema here, before any work starts."""
    validated = source.generate_dir is not None and cfg.input_format is None  # a generate dir holds traces
    if source.hub is not None:
        columns = {Path(cfg.src): list(source.hub.column_names)}
    else:
        columns = {f: input_columns(f) if validated else file_columns(f) for f in source.files}
    layout = resolve_layout(columns, cfg)
    if layout.format == "trace" and not validated:
        for f in source.files:
            input_columns(f)
    return layout


def input_columns(path: Path) -> list[str]:
    """Column names of a trace file (validated: the required ones present, with the right types)."""
    import pyarrow as pa

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError):
            read_parquet(path)  # raises the project's one-line error for an unreadable file
            raise
    else:
        first = first_rows(path, 1)
        if not first:
            raise DistillError(f"trace file '{path}' is empty; pass a file with at least one trace")
        try:
            schema = pa.Table.from_pylist(first).schema
        except (json.JSONDecodeError, pa.ArrowInvalid) as err:
            raise DistillError(f"{path}:1 is not a valid JSON trace ({err}); fix the file") from None
    # a numeric reference answer (AIME's 25) is read as text, so it need not be a string column
    numeric_answer = "answer" in schema.names and (pa.types.is_integer(schema.field("answer").type)
                                                   or pa.types.is_floating(schema.field("answer").type))
    # the code columns live in schema.CODE, not TRACE: a file whose first row is a code row has them
    expected = pa.schema([(TRACE if n in TRACE.names else CODE).field(n) for n in TRACE_REQUIRED + OPTIONAL
                          if (n in schema.names or n in TRACE_REQUIRED) and not (n == "answer" and numeric_answer)])
    validate(schema, expected, str(path), kind="trace")
    return [n for n in TRACE_REQUIRED + OPTIONAL if n in schema.names]


# ---------------------------------------------------------------- the work plan (and resuming it)


def fingerprint(cfg: CurateConfig, files: list[Path], hub: Any = None) -> str:
    """What decides the staged results: every setting but where things go and how many processes, plus the
    input files' identity (path, size, modification time), or a hub dataset's own fingerprint."""
    settings = {k: spelled_out(v) for k, v in to_dict(cfg).items()
                if k not in ("src", "out", "num_proc", "force", "shard_rows", "dataset_name", "license")}
    inputs = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    if hub is not None:
        inputs.append((cfg.src, getattr(hub, "_fingerprint", None), hub.num_rows))
    return hashlib.sha256(json.dumps([settings, inputs], sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_plan(out: Path, cfg: CurateConfig, source: Source) -> dict[str, Any] | None:
    """The work units of this run (new, or the interrupted run's); None when OUT already holds this exact
    result. A different config or input is refused unless --force."""
    fp = fingerprint(cfg, source.files, source.hub)
    if cfg.force:
        for name in OUTPUTS:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    previous = read_manifest(out)
    if previous and previous.get("input_fingerprint") != fp:
        raise DistillError(
            f"{out} holds a curate run made with another config or input; re-run with the same ones to resume, "
            "use --force to start over, or choose another --out"
        )
    if previous and previous.get("status") == "complete" and (out / CURATION_REPORT).is_file():
        return None
    plan_path = out / WORK / "plan.json"
    if plan_path.is_file():
        plan = json.loads(plan_path.read_text())
        if plan.get("fingerprint") == fp:
            return plan
        shutil.rmtree(out / WORK)  # stale staging of a run that never wrote its manifest
    if source.hub is not None:
        source.files = [write_hub(source.hub, out / WORK / "hub")]
    plan = {"fingerprint": fp, "units": plan_units(source.files, cfg.unit_rows, source.layout)}
    plan["rows"] = sum(u["rows"] for u in plan["units"])
    if plan["rows"] == 0:
        raise DistillError(f"traces '{cfg.src}' hold no rows; nothing to curate")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan_path, json.dumps(plan))
    return plan


def plan_units(files: list[Path], unit_rows: int, layout: Any = None) -> list[dict[str, Any]]:
    """Cut the input into units of about `unit_rows` rows: groups of parquet row groups, line ranges of jsonl,
    a whole .json file. Each unit carries the input layout (rows are mapped onto TRACE as they are read)."""
    units = []
    for path in files:
        if layout is None or layout.format == "trace":
            columns = input_columns(path)
        else:
            columns = [c for c in layout.columns() if c in file_columns(path)]
        if path.suffix == ".json":
            units.append({"file": str(path), "columns": columns, "json": True, "rows": len(first_rows(path))})
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            group: list[int] = []
            rows = 0
            for g in range(meta.num_row_groups):
                group.append(g)
                rows += meta.row_group(g).num_rows
                if rows >= unit_rows or g == meta.num_row_groups - 1:
                    units.append({"file": str(path), "columns": columns, "row_groups": group, "rows": rows})
                    group, rows = [], 0
        else:
            for start, end, rows in jsonl_ranges(path, unit_rows):
                units.append({"file": str(path), "columns": columns, "bytes": [start, end], "rows": rows})
    for i, unit in enumerate(units):
        unit["index"] = i
        if layout is not None and layout.format != "trace":
            unit["layout"] = layout.to_dict()
    return units


def jsonl_ranges(path: Path, unit_rows: int) -> list[tuple[int, int, int]]:
    """(start byte, end byte, non-empty lines) of consecutive blocks of `unit_rows` lines."""
    ranges, start, pos, rows = [], 0, 0, 0
    with path.open("rb") as f:
        for line in f:
            pos += len(line)
            rows += bool(line.strip())
            if rows >= unit_rows:
                ranges.append((start, pos, rows))
                start, rows = pos, 0
    if rows:
        ranges.append((start, pos, rows))
    return ranges


# ---------------------------------------------------------------- phase A: row filters in worker processes


def run_units(out: Path, cfg: CurateConfig, plan: dict[str, Any], stop: StopOnSignal | None = None,
              references: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run every unit not yet committed, on `num_proc` processes with a bounded number in flight; return the
    stats of all units (resumed ones included). On a stop request no unit is started; those running finish."""
    work = out / WORK
    done = {u["index"]: json.loads(p.read_text()) for u in plan["units"] if (p := stats_path(work, u)).is_file()}
    todo = [u for u in plan["units"] if u["index"] not in done]
    if done:
        get_logger().info(f"resuming: {len(done)} of {len(plan['units'])} work units already done")
    num_proc = cfg.num_proc or os.cpu_count() or 1
    has_code = any("tests" in u["columns"] for u in todo)
    spec = worker.WorkerSpec.build(cfg, has_code, num_proc, references) if todo else None
    kill_after = int(os.environ.get("_DISTILL_TEST_KILL_AFTER_UNITS", "0"))  # test hook: simulate kill -9
    rows_of = {u["index"]: u["rows"] for u in plan["units"]}  # input rows (a row may hold k traces)
    with progress("curate", total=plan["rows"], unit="rows") as bar:
        bar.advance(sum(rows_of[i] for i in done))
        for stats in worker.map_units(spec, todo, str(work), num_proc):
            done[stats["index"]] = stats
            bar.advance(rows_of[stats["index"]], tokens=stats["completion_tokens"])
            if kill_after and len(done) >= kill_after:
                os.kill(os.getpid(), 9)
            if stop is not None and stop.requested:
                break
    for stats in done.values():
        stats["resumed"] = stats["index"] not in {u["index"] for u in todo}
    return [done[u["index"]] for u in plan["units"] if u["index"] in done]


def stop_curate(out: Path, manifest: dict[str, Any], plan: dict[str, Any], unit_stats: list[dict[str, Any]],
                signum: int) -> None:
    """The manifest of a stopped run (the staged units stay under OUT/.curate/), then Interrupted."""
    done, total = len(unit_stats), len(plan["units"])
    write_manifest(out, status="interrupted", counts={"units_done": done, "units": total}, **manifest)
    raise Interrupted(signum, f"{done:,} of {total:,} work units are committed in {out / WORK}; re-run the same "
                      "command to finish the rest")


def stats_path(work: Path, unit: dict[str, Any]) -> Path:
    return work / f"unit-{unit['index']:05d}.json"


SMALL_COLUMNS = ["id", "prompt_id", "num_tokens", "completion_key", "teacher", "source", "kind", "task", "verified"]


def select(out: Path, cfg: CurateConfig, plan: dict[str, Any], majority: dict[str, Any] | None = None) -> Selection:
    """Apply the set filters, in the configured order, over the staged survivors of every unit; then the
    select step (a budget, shortest_correct), whose left-out rows are `not_selected`."""
    import numpy as np

    table = worker.read_staged(out / WORK, plan["units"], SMALL_COLUMNS)
    sizes = table.pop("_sizes")
    alive = np.ones(len(table["id"]), dtype=bool)
    rates = prompt_rates(out, cfg, plan, majority or {})
    selection = Selection(table=table, rates=rates, majority=majority or {})
    for name in (f for f in cfg.filters if FILTERS[f].kind == "set"):
        params = cfg.params(name)
        if name == "duplicate":
            drops = duplicate_rows(out, plan, table, alive, params)
        elif name == "pass_rate":
            drops = pass_rate_rows(table, alive, rates, params)
        else:
            drops = cap_rows(table, alive, params)
        for pos, detail in drops:
            alive[pos] = False
            record_drop(selection, name, table["id"][pos], table["prompt_id"][pos], detail)
    if cfg.select.active:
        for pos, detail in choose([int(p) for p in alive.nonzero()[0]], table, rates, cfg.select):
            alive[pos] = False
            record_drop(selection, "not_selected", table["id"][pos], table["prompt_id"][pos], detail)
    bounds = np.cumsum([0] + sizes)
    selection.keep = [alive[bounds[i] : bounds[i + 1]] for i in range(len(sizes))]
    return selection


def record_drop(selection: Selection, reason: str, row_id: str, prompt_id: str, detail: str) -> None:
    selection.dropped[reason] += 1
    entry = {"id": row_id, "prompt_id": prompt_id, "reason": reason, "detail": detail}
    selection.ledger.append(entry)
    examples = selection.examples.setdefault(reason, [])
    if len(examples) < 3:
        examples.append({"id": row_id, "detail": detail})


def duplicate_rows(out: Path, plan: dict[str, Any], table: dict[str, Any], alive, params: DuplicateParams):
    """Repeated ids, exact duplicate completions, then rows of near-duplicate prompts. Of duplicates the smallest
    id is kept, whatever the order of the input, so the same traces sharded another way (generate --part I/N, a
    resumed run) give the same dataset."""
    drops, seen_ids, seen_keys = [], set(), {}
    for pos in sorted(map(int, alive.nonzero()[0]), key=lambda p: table["id"][p]):  # stable: same ids by position
        row_id, key = table["id"][pos], int(table["completion_key"][pos])
        if row_id in seen_ids:
            drops.append((pos, "repeated id"))
        elif params.completions and key in seen_keys:
            drops.append((pos, f"same completion as {seen_keys[key]}"))
        else:
            seen_ids.add(row_id)
            seen_keys.setdefault(key, row_id)
    if params.prompts:
        gone = {p for p, _ in drops}
        live_prompts = {table["prompt_id"][p] for p in map(int, alive.nonzero()[0]) if p not in gone}
        signatures = sorted(((pid, sig) for pid, sig in worker.read_signatures(out / WORK, plan["units"])
                             if pid in live_prompts), key=lambda item: item[0])
        near = near_duplicate_prompts(signatures, params.threshold, params.num_perm)
        for pos in map(int, alive.nonzero()[0]):
            pid = table["prompt_id"][pos]
            if pid in near and pos not in gone:
                drops.append((pos, f"prompt near-duplicates prompt {near[pid]}"))
    return sorted(drops)


def pass_rate_rows(table: dict[str, Any], alive, rates: dict[str, tuple[int, int]], params: PassRateParams):
    """Rows of prompts whose pass rate lies outside [min, max]; a prompt without one (nothing graded) stays."""
    drops = []
    for pos in map(int, alive.nonzero()[0]):
        c_n = rates.get(table["prompt_id"][pos])
        if c_n and not params.min <= c_n[0] / c_n[1] <= params.max:
            drops.append((pos, f"pass rate {c_n[0]}/{c_n[1]} = {c_n[0] / c_n[1]:.2f} outside "
                               f"[{params.min:g}, {params.max:g}]"))
    return drops


# ---------------------------------------------------------------- graded samples: pass rates and majority votes


def prompt_rates(out: Path, cfg: CurateConfig, plan: dict[str, Any], majority: dict[str, Any]
                 ) -> dict[str, tuple[int, int]]:
    """Per prompt (correct, samples): over every trace curate read, or over pass_rate.source's traces (graded
    against the same references, majority ones included)."""
    if cfg.pass_rate.source is None:
        return pass_rates(worker.read_samples(out / WORK, plan["units"]))

    def measure() -> dict[str, tuple[int, int]]:
        references = {k: v["answer"] for k, v in majority.items() if v["answer"]}
        samples = grade_all(out, cfg, find_source(cfg.pass_rate.source), references=references)
        return pass_rates((s["prompt_id"], s["correct"]) for s in samples)

    return {pid: (c, n) for pid, (c, n) in staged_json(out / WORK / "pass_rate_source.json", measure).items()}


def majority_pass(out: Path, cfg: CurateConfig, plan: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """reference=majority: every sample's answer is read once (no filter runs), and each prompt without a reference
    gets the majority answer of its samples; kept under OUT/.curate/ so a resumed run does not vote again."""
    if cfg.reference != "majority":
        return {}

    def vote() -> dict[str, dict[str, Any]]:
        ballots: dict[str, list[str | None]] = {}
        for s in grade_all(out, cfg, None, plan, task="ballot"):  # the traces without a reference of their own
            ballots.setdefault(s["prompt_id"], []).append(s["answer"])
        return majority_references(ballots, cfg.wrong_answer.timeout)

    return staged_json(out / WORK / "majority.json", vote)


def grade_all(out: Path, cfg: CurateConfig, source: Source | None, plan: dict[str, Any] | None = None,
              references: dict[str, str] | None = None, task: str = "grade") -> list[dict[str, Any]]:
    """The verdict and answer of every trace of `source` (or of this run's plan), on num_proc processes; with
    task="ballot" only the answers of the traces without a reference, ungraded."""
    units = plan["units"] if plan is not None else plan_units(source.files, cfg.unit_rows,
                                                              input_layout(source, cfg))
    num_proc = cfg.num_proc or os.cpu_count() or 1
    spec = worker.WorkerSpec.build(cfg, False, num_proc, references, grade_only=True)
    samples, rows_of = [], {u["index"]: u["rows"] for u in units}
    with progress(task, total=sum(rows_of.values()), unit="rows") as bar:
        for result in worker.map_units(spec, units, str(out / WORK), num_proc, task=task):
            samples.extend(result["samples"])
            bar.advance(rows_of[result["index"]])
    return samples


def staged_json(path: Path, compute):
    """compute(), kept in `path` (a resumed run reads it back instead)."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(value))
    return json.loads(json.dumps(value))


def cap_rows(table: dict[str, Any], alive, params: PerPromptCapParams):
    live = [int(p) for p in alive.nonzero()[0]]
    rows = [(table["id"][p], table["prompt_id"][p], int(table["num_tokens"][p])) for p in live]
    dropped = over_cap(rows, params.max_per_prompt, params.strategy, params.seed)
    return [(live[i], f"more than {params.max_per_prompt} traces of prompt {rows[i][1]} ({params.strategy} kept)")
            for i in dropped]


# ---------------------------------------------------------------- output


def write_dataset(out: Path, cfg: CurateConfig, plan: dict[str, Any], selection: Selection):
    """Copy the selected rows into `data/train-%05d.parquet` (via a temp dir, swapped in at the end) and
    write `rejected.parquet`; returns the num_tokens of every row written."""
    tmp = out / WORK / DATA
    shutil.rmtree(tmp, ignore_errors=True)
    with progress("write", total=int(sum(k.sum() for k in selection.keep)), unit="examples") as bar:
        lengths = worker.write_selected(out / WORK, plan["units"], selection.keep, tmp, cfg.shard_rows, bar.advance,
                                        extra=() if cfg.answer_filter else ("verified",))
    shutil.rmtree(out / DATA, ignore_errors=True)
    os.replace(tmp, out / DATA)
    worker.write_ledger(out / WORK, plan["units"], selection.ledger, out / REJECTED)
    if selection.majority:
        atomic_write_text(out / MAJORITY, "".join(json.dumps({"prompt_id": k, **v}) + "\n"
                                                  for k, v in selection.majority.items()))
    return lengths
