"""Generation in parts: N runs (a Slurm array, one engine per node) fill one OUT together, each with its own slice.

    distill generate --prompts p.jsonl --out runs/gen --part 3/8      # the 4th of 8 disjoint slices
    distill curate runs/gen --out runs/data                           # refused, naming the parts not complete yet

A row (prompt_id/sample) belongs to part `sha256(id) mod N`: disjoint, the same on every node, and stable when
prompts or samples are added later (a row never moves to another part, so it is never generated twice). Part I
of N is a complete generate directory of its own, `OUT/parts/part-0000I-of-0000N/` (traces/ shards, journal,
.lock, manifest.json), so it is resumed by re-running that part alone and nothing another part wrote is touched.
`OUT/manifest.json` is the manifest of the whole: stage generate, `num_parts`, one entry per part (status, rows),
and status complete once every part is; each part rewrites it, under a lock, when it starts and when it ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.manifest import read_manifest, write_manifest
from distill.core.stage_dirs import PARTS, TRACES, num_parts, part_entries, shard_paths


@dataclass(frozen=True)
class Part:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}-of-{self.count:05d}"

    def holds(self, row_id: str) -> bool:
        return part_of(row_id, self.count) == self.index


def parse_part(text: str) -> Part:
    """'I/N' (0-based I) -> Part; anything else is a one-line error saying the form."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise DistillError(f"--part {text!r} is not of the form I/N (0-based: --part 0/8 ... --part 7/8)")
    index, count = int(m[1]), int(m[2])
    if count < 1 or not 0 <= index < count:
        raise DistillError(f"--part {text}: I must be in 0..N-1 and N at least 1 (0-based: --part 0/{max(count, 1)} "
                           f"... --part {max(count, 1) - 1}/{max(count, 1)})")
    return Part(index, count)


def part_of(row_id: str, count: int) -> int:
    return int.from_bytes(hashlib.sha256(row_id.encode()).digest()[:8], "little") % count


def part_dir(out: Path, part: Part) -> Path:
    return out / PARTS / part.name


def check_layout(out: Path, part: Part | None) -> None:
    """A part run into a single run's OUT, a single run into a parted OUT, or another N: refused, one line each."""
    n = num_parts(out)
    if part is None:
        if n is not None:
            raise DistillError(f"{out} is generated in {n} parts; pass --part I/{n} (0 <= I < {n}) to run one of "
                               "them, or choose another --out")
        return
    if n is not None and n != part.count:
        raise DistillError(f"{out} is generated in {n} parts, not {part.count}; pass --part I/{n}, or choose "
                           "another --out to split it another way")
    if shard_paths(out / TRACES):
        raise DistillError(f"{out} holds a generation run without --part; run it again without --part to "
                           "resume it, or choose another --out for a generation in parts")


# ---------------------------------------------------------------- the manifest of the whole


@contextmanager
def _whole_lock(out: Path):
    """Short, blocking: parts on other nodes update OUT/manifest.json one at a time (flock works on NFS v4,
    Lustre and GPFS as Slurm clusters mount them)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".parts.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update_whole(out: Path, part: Part, config: dict[str, Any], started_at: str, extra: dict[str, Any]) -> str:
    """Rewrite OUT/manifest.json from every part's manifest; returns the status of the whole."""
    with _whole_lock(out):
        previous = read_manifest(out) or {}
        entries = part_entries(out, part.count)
        statuses = [e["status"] for e in entries.values()]
        status = "complete" if all(s == "complete" for s in statuses) else "incomplete"
        counts = {
            "parts": part.count,
            "parts_complete": statuses.count("complete"),
            "rows": sum(e["rows"] for e in entries.values()),
            "rows_expected": sum(e["rows_expected"] or 0 for e in entries.values()),
        }
        if previous.get("status") == "complete" and status == "complete" and previous.get("parts") == entries:
            return status  # nothing changed: later stages hold this manifest's hash
        config = {k: v for k, v in config.items() if k != "part"}
        write_manifest(out, "generate", config=config, counts=counts, status=status,
                       started_at=previous.get("started_at", started_at),
                       extra={**extra, "num_parts": part.count, "parts": entries})
    return status
