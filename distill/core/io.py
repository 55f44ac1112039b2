"""Stage directories on disk: sharded parquet output committed atomically, and `manifest.json` with lineage.

    writer = ShardWriter(out / "traces", "traces", TRACE)   # skips ids already committed, recovers the journal
    for row in rows:
        writer.add(row)                                      # journaled at once, committed every shard_rows rows
    writer.close()
    write_manifest(out, "generate", config=..., inputs=[], counts={"rows": writer.committed_rows})

A shard is written to a hidden temp file and renamed into place, so a reader (or a resumed run) never sees a
half-written shard. Rows not yet in a shard are appended to a hidden journal (`.traces.journal.jsonl`) as soon
as they exist, so a process killed with SIGKILL loses only work still in flight; the next writer on the same
directory commits the journal's complete lines first, dropping ids that a shard already holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill._version import __version__
from distill.core.errors import DistillError

MANIFEST = "manifest.json"
_SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5,})\.parquet$")


# ---------------------------------------------------------------- shards


def shard_paths(directory: str | Path, prefix: str | None = None) -> list[Path]:
    """Committed shards `<prefix>-%05d.parquet` in index order (temp files and journals are hidden)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        m = _SHARD_RE.match(path.name)
        if m and (prefix is None or m["prefix"] == prefix):
            found.append((m["prefix"], int(m["index"]), path))
    return [p for _, _, p in sorted(found)]


def read_shards(directory: str | Path, prefix: str | None = None, columns: Sequence[str] | None = None) -> pa.Table:
    """All committed shards of a directory as one table (empty table with no columns when there are none)."""
    tables = [read_parquet(p, columns) for p in shard_paths(directory, prefix)]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(columns) if columns else None)
    except (pa.ArrowInvalid, OSError) as err:
        raise DistillError(f"cannot read shard '{path}': {err}; delete it and re-run to regenerate its rows") from None


class ShardWriter:
    """Append-only writer of `<prefix>-%05d.parquet` shards with a crash journal; see the module docstring."""

    def __init__(self, directory: str | Path, prefix: str, schema: pa.Schema, shard_rows: int = 1000):
        self.dir = Path(directory)
        self.prefix = prefix
        self.schema = schema
        self.shard_rows = max(1, shard_rows)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.dir / f".{prefix}.journal.jsonl"
        self._remove_temp_files()
        shards = shard_paths(self.dir, prefix)
        self.next_index = (int(_SHARD_RE.match(shards[-1].name)["index"]) + 1) if shards else 0
        self.done_ids: set[str] = set()
        for path in shards:
            self.done_ids.update(read_parquet(path, ["id"]).column("id").to_pylist())
        self.resumed_rows = len(self.done_ids)
        self.committed_rows = 0  # rows this writer committed (journal recovery included)
        self.skipped_duplicates = 0
        self._buffer: list[dict[str, Any]] = []
        self._buffer_ids: set[str] = set()
        self.recovered_rows = self._recover_journal()
        self._journal = None  # opened at the first row, so a run that fails before it leaves no file behind

    def _remove_temp_files(self) -> None:
        for tmp in self.dir.glob(f".{self.prefix}-*.parquet.tmp"):
            tmp.unlink()

    def _recover_journal(self) -> int:
        """Commit the complete lines a killed writer left in its journal; a torn last line is dropped."""
        if not self.journal_path.exists():
            return 0
        rows = []
        with self.journal_path.open(encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn write: the process died mid-line
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                if row["id"] not in self.done_ids:
                    rows.append(row)
        unique = {r["id"]: r for r in rows}
        self._buffer = list(unique.values())
        self._write_shard()
        self.journal_path.unlink()
        return len(unique)

    def __contains__(self, row_id: str) -> bool:
        return row_id in self.done_ids or row_id in self._buffer_ids

    def add(self, row: dict[str, Any]) -> bool:
        """Journal a row and buffer it for the next shard; returns False (and drops it) for an id already held."""
        if row["id"] in self:
            self.skipped_duplicates += 1
            return False
        self._buffer.append(row)
        self._buffer_ids.add(row["id"])
        if self._journal is None:
            self._journal = self.journal_path.open("a", encoding="utf-8")
        self._journal.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._journal.flush()  # into the OS page cache: survives SIGKILL of this process
        if len(self._buffer) >= self.shard_rows:
            self.commit()
        return True

    def commit(self) -> None:
        """Write buffered rows as one shard (temp file, fsync, rename), then empty the journal."""
        if not self._buffer:
            return
        self._write_shard()
        if self._journal is not None:
            self._journal.seek(0)
            self._journal.truncate()

    def _write_shard(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        final = self.dir / f"{self.prefix}-{self.next_index:05d}.parquet"
        tmp = self.dir / f".{final.name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        self.done_ids.update(r["id"] for r in self._buffer)
        self.committed_rows += len(self._buffer)
        self.next_index += 1
        self._buffer = []
        self._buffer_ids = set()

    def close(self) -> None:
        self.commit()
        self._close_journal()
        self.journal_path.unlink(missing_ok=True)

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        # On an exception the buffered rows stay in the journal (recovered next run) rather than being
        # committed from a possibly inconsistent state.
        if exc[0] is None:
            self.close()
        else:
            self._close_journal()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirLock:
    """An exclusive lock on an output directory, so two runs never write the same shards; released by the OS
    when the process dies, so a killed run never leaves a stale lock."""

    def __init__(self, directory: str | Path, what: str):
        self.path = Path(directory) / ".lock"
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> DirLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 64).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise DistillError(
                f"{self.path.parent} is being written by {self.what} (pid {holder}); wait for it to finish "
                "or choose another --out"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------- manifests


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def manifest_sha256(directory: str | Path) -> str | None:
    path = Path(directory) / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest of a stage directory, or None when it has none."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DistillError(f"{path} is not valid JSON; restore it or delete it (the lineage then says unknown)") from None


def is_complete(directory: str | Path) -> bool:
    """Whether a stage directory holds a finished run (its manifest says status complete)."""
    return (read_manifest(directory) or {}).get("status") == "complete"


def lineage_entry(directory: str | Path) -> dict[str, Any]:
    """What a later stage records about one of its inputs: where it is, its manifest hash, and what made it."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        return {"path": str(directory), "stage": "unknown", "manifest_sha256": None}
    return {
        "path": str(directory.resolve()),
        "stage": manifest.get("stage", "unknown"),
        "manifest_sha256": manifest_sha256(directory),
        "config": manifest.get("config", {}),
        "counts": manifest.get("counts", {}),
        "finished_at": manifest.get("finished_at"),
    }


def spelled_out(value: Any) -> Any:
    """`value` (a setting, or a dict/list of them) with every local path made absolute. Resume checks compare
    settings through it, so `runs/tok` and `/home/me/runs/tok` do not read as a changed config when a run is
    resumed from another directory; hub ids and other strings pass through unchanged."""
    if isinstance(value, dict):
        return {k: spelled_out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [spelled_out(v) for v in value]
    if isinstance(value, str) and value and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def write_manifest(
    directory: str | Path,
    stage: str,
    config: dict[str, Any],
    inputs: Sequence[str | Path] = (),
    counts: dict[str, Any] | None = None,
    started_at: str | None = None,
    status: str = "complete",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `manifest.json` atomically. `lineage` is every ancestor stage, nearest first, so any later
    stage (an eval report) can name the dataset, recipe and teacher behind what it looks at."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    input_entries = [lineage_entry(p) for p in inputs]
    lineage: list[dict[str, Any]] = []
    for entry, path in zip(input_entries, inputs, strict=True):
        lineage.append(entry)
        upstream = read_manifest(path) or {}
        lineage.extend(upstream.get("lineage", []))
    manifest = {
        "stage": stage,
        "status": status,
        "distill_version": __version__,
        "config": config,
        "inputs": [{k: e[k] for k in ("path", "stage", "manifest_sha256")} for e in input_entries],
        "lineage": lineage,
        "counts": counts or {},
        "started_at": started_at or now(),
        "finished_at": now() if status == "complete" else None,
        "host": platform.node(),
        "versions": package_versions(),
        **(extra or {}),
    }
    path = directory / MANIFEST
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def find_stage(manifest: dict[str, Any] | None, stage: str) -> dict[str, Any] | None:
    """The nearest ancestor of `stage` in a manifest's lineage (or the manifest itself)."""
    if not manifest:
        return None
    if manifest.get("stage") == stage:
        return manifest
    return next((e for e in manifest.get("lineage", []) if e.get("stage") == stage), None)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide results, read from metadata (nothing is imported)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "accelerate", "peft", "datasets", "lm_eval", "math-verify", "vllm"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON Lines file; a bad line is an error naming the file and line number."""
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise DistillError(f"{path}:{n} is not valid JSON ({err.msg}); fix or remove that line") from None
