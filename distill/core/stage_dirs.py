"""The on-disk contract between stages: the names of the files and folders each stage writes in its output
directory, how shards are named (`<prefix>-00000.parquet`), and how a generation in parts is laid out. A stage
reads the previous stage's directory through these names, never through its code (manifest.json: manifest.py).

    OUT/traces/traces-00000.parquet          generate (a run in parts: OUT/parts/part-00000-of-00004/traces/)
    OUT/data/train-00000.parquet             curate, with OUT/curation_report.json and OUT/rejected.parquet
    OUT/recipe.yaml                          sft: the resolved recipe beside the model
    OUT/results.json, OUT/samples/<task>.jsonl   eval (the demo writes its own results.json)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.manifest import read_manifest

TRACES = "traces"  # generate's shards: OUT/traces/traces-*.parquet
DATA, TRAIN = "data", "train"  # curate's shards: OUT/data/train-*.parquet
REJECTED = "rejected.parquet"  # curate: every dropped row and why
CURATION_REPORT = "curation_report.json"  # curate: counts per filter; with the manifest, the mark of a finished run
RECIPE = "recipe.yaml"  # sft: the resolved recipe in the output dir
RESULTS = "results.json"  # eval's scores per task (and the demo's table)
SAMPLES = "samples"  # eval: OUT/samples/<task>.jsonl, one line per scored sample
SHARD_NAME = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5,})\.parquet$")


# ---------------------------------------------------------------- shards


def shard_paths(directory: str | Path, prefix: str | None = None) -> list[Path]:
    """Committed shards `<prefix>-%05d.parquet` in index order (temp files and journals are hidden)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        m = SHARD_NAME.match(path.name)
        if m and (prefix is None or m["prefix"] == prefix):
            found.append((m["prefix"], int(m["index"]), path))
    return [p for _, _, p in sorted(found)]


PARTS = "parts"
_PART_DIR_RE = re.compile(r"^part-(\d{5})-of-(\d{5})$")


def found_parts(out: Path) -> dict[int, Path]:
    """Part directories under OUT/parts/ by index; parts of another N than the others' are an error."""
    root = out / PARTS
    if not root.is_dir():
        return {}
    found, counts = {}, set()
    for path in sorted(root.iterdir()):
        m = _PART_DIR_RE.match(path.name)
        if m and path.is_dir():
            found[int(m[1])] = path
            counts.add(int(m[2]))
    if len(counts) > 1:
        raise DistillError(f"{root} holds parts of {' and '.join(map(str, sorted(counts)))} splits; keep one split "
                           "(move the other parts out) and re-run")
    return found


def num_parts(out: Path) -> int | None:
    """N of a generation in parts, or None for a single run (or nothing yet)."""
    manifest = read_manifest(out) or {}
    if manifest.get("num_parts"):
        return int(manifest["num_parts"])
    found = found_parts(out)
    return int(_PART_DIR_RE.match(next(iter(found.values())).name)[2]) if found else None


def part_entries(out: Path, count: int) -> dict[str, dict[str, Any]]:
    """One entry per part, read from the parts' own manifests: status (missing when never started), rows."""
    found = found_parts(out)
    entries = {}
    for index in range(count):
        manifest = read_manifest(found[index]) if index in found else None
        counts = (manifest or {}).get("counts", {})
        entries[str(index)] = {
            "status": (manifest or {}).get("status", "missing"),
            "rows": counts.get("rows", 0),
            "rows_expected": counts.get("rows_expected"),
            "host": (manifest or {}).get("host"),
            "finished_at": (manifest or {}).get("finished_at"),
        }
    return entries


# ---------------------------------------------------------------- reading the parts (curate)


def is_parted(directory: Path) -> bool:
    return bool((read_manifest(directory) or {}).get("num_parts")) or (directory / PARTS).is_dir()


def part_shards(directory: Path, allow_incomplete: bool = False) -> list[Path]:
    """The trace shards of every complete part (of every part with --allow-incomplete); a part not complete is
    refused in one line that names it, so a dataset is never cut from a generation still under way."""
    count = num_parts(directory)
    if count is None:
        raise DistillError(f"{directory} holds no parts; pass a generate output directory")
    entries = part_entries(directory, count)
    unfinished = {int(i): e["status"] for i, e in entries.items() if e["status"] != "complete"}
    if unfinished and not allow_incomplete:
        names = ", ".join(f"{i}/{count} ({s})" for i, s in sorted(unfinished.items()))
        raise DistillError(f"{directory}: {len(unfinished)} of {count} parts are not complete: {names}; run "
                           "those parts (`distill generate ... --part I/N`), or pass --allow-incomplete to curate "
                           "the rows written so far")
    found = found_parts(directory)
    return [shard for index in sorted(found) for shard in shard_paths(found[index] / TRACES)]
