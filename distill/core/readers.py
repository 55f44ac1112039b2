"""Readers of the row files and hub datasets a user points a stage at (prompts, traces, eval sets): JSON Lines,
JSON lists and parquet files, and one split of a hub dataset, each failure one line that names the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON Lines file; a bad line is an error naming the file and line number."""
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise DistillError(f"{path}:{n} is not valid JSON ({err.msg}); fix or remove that line") from None


PROMPT_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def looks_local(name: str) -> bool:
    """Is `name` a path the user meant (so "not found" is the error), rather than a hub id? A hub id is `name`
    or `org/name`; a path starts like one or has more than one '/'."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def read_file(path: Path, what: str = "prompts") -> list[dict[str, Any]]:
    """All rows of one .jsonl/.json/.parquet file (curate reads trace files through this too)."""
    if path.suffix == ".parquet":
        import pyarrow as pa  # pyarrow loads only for a parquet file: the readers serve light modules too
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as err:
            raise DistillError(f"cannot read {what} '{path}' as parquet ({err}); pass a valid .parquet file") from None
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DistillError(f"{what} '{path}' are not valid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(data, list):
            raise DistillError(f"{what} '{path}' must be a JSON list of objects (or use .jsonl, one per line)")
        return data
    if path.suffix == ".jsonl":
        return list(iter_jsonl(path))
    raise DistillError(f"{what} file '{path}' has an unknown type; use .jsonl, .json or .parquet")


def hub_dataset(dataset_id: str, split: str, subset: str | None, what: str = "prompts") -> Any:
    """One split of a hub dataset (datasets.Dataset); any failure is one line naming the fix. Curate reads its
    trace sets through this too."""
    try:
        import datasets

        return datasets.load_dataset(dataset_id, subset, split=split)
    except Exception as err:  # noqa: BLE001 - the hub raises many kinds; all mean "could not load"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DistillError(
            f"could not load {what} '{dataset_id}' (split {split}) from the hub: {first}; "
            "pass a local .jsonl/.parquet file, or check the dataset id, --split and your network"
        ) from None
