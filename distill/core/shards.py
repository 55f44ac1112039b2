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

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill.core.errors import DistillError
from distill.core.stage_dirs import SHARD_NAME, shard_paths


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
        self.next_index = (int(SHARD_NAME.match(shards[-1].name)["index"]) + 1) if shards else 0
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
