"""Load a prompt set (a .jsonl/.json/.parquet file, a directory of them, or a hub dataset id) into the PROMPT
schema, and turn a prompt into the messages a teacher sees.

    table = load_prompts("../shared/data/math_train_sample.jsonl", limit=100)
    table.column_names   # ['id', 'problem', 'answer', 'source', 'subject', 'level', 'source_index']

A prompt row: {"id": "math-train-0000", "problem": "Find the sum ...", "answer": "12", "source": "https://...",
...any other fields, carried through to the traces untouched}.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from distill.core.errors import DistillError
from distill.core.protocol import problem_id
from distill.core.readers import PROMPT_FILE_SUFFIXES, hub_dataset, looks_local, read_file
from distill.core.schema import CODE, CODE_LANGUAGES, TRACE


def load_prompts(
    src: str,
    id_field: str = "id",
    problem_field: str = "problem",
    answer_field: str = "answer",
    source_field: str = "source",
    split: str = "train",
    subset: str | None = None,
    limit: int | None = None,
    tests_field: str = "tests",
    entry_point_field: str = "entry_point",
    language_field: str = "language",
) -> pa.Table:
    """Prompts as a table with `id, problem, answer, source` first, then the CODE fields `tests, entry_point,
    language` when the set has tests, then every other field."""
    rows = _read_rows(src, split, subset)
    if not rows:
        raise DistillError(f"prompts '{src}' hold no rows; pass a file with at least one prompt")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if problem_field not in columns:
        raise DistillError(
            f"prompts '{src}' have no '{problem_field}' field (fields: {', '.join(columns[:12])}); "
            "name the problem field with --problem-field"
        )
    for field, flag, default in (
        (id_field, "--id-field", "id"),
        (answer_field, "--answer-field", "answer"),
        (source_field, "--source-field", "source"),
    ):
        if field not in columns and field != default:
            raise DistillError(f"prompts '{src}' have no '{field}' field (fields: {', '.join(columns[:12])}); fix {flag}")
    ids = _prompt_ids(rows, id_field, problem_field, src)
    _check_problems(rows, ids, problem_field, src)
    if limit is not None:
        rows, ids = rows[:limit], ids[:limit]
    core = {
        "id": ids,
        "problem": [str(r[problem_field]) for r in rows],
        "answer": [_opt_str(r.get(answer_field)) for r in rows],
        "source": [_opt_str(r.get(source_field)) or _default_source(src) for r in rows],
    }
    code = code_columns(rows, columns, src, tests_field, entry_point_field, language_field)
    taken = {id_field, problem_field, answer_field, source_field, *(
        (tests_field, entry_point_field, language_field) if code else ())}
    # the trace schema already has these names: a prompt field of the same name cannot be carried through
    reserved = set(TRACE.names) | set(CODE.names)
    extras = {c: _column([r.get(c) for r in rows]) for c in columns if c not in taken and c not in reserved}
    return pa.table({**{k: pa.array(v, pa.string()) for k, v in {**core, **code}.items()}, **extras})


def code_columns(rows: list[dict[str, Any]], columns: list[str], src: str, tests_field: str, entry_point_field: str,
                 language_field: str) -> dict[str, list[str | None]]:
    """The CODE fields (schema.CODE) of a prompt set that has tests; {} for a set without. Tests given as a
    list or a dict (MBPP's test_list, CodeContests' {"input": [...], "output": [...]}) are stored as JSON text,
    which the code grader reads back; a row without tests is a math row (all three null)."""
    if tests_field not in columns:
        if tests_field != "tests":
            raise DistillError(f"prompts '{src}' have no '{tests_field}' field (fields: {', '.join(columns[:12])}); "
                               "fix --tests-field")
        return {}
    for field, flag, default in ((entry_point_field, "--entry-point-field", "entry_point"),
                                 (language_field, "--language-field", "language")):
        if field not in columns and field != default:
            raise DistillError(f"prompts '{src}' have no '{field}' field (fields: {', '.join(columns[:12])}); "
                               f"fix {flag}")
    tests = [_tests_text(r.get(tests_field)) for r in rows]
    languages = [(_opt_str(r.get(language_field)) or "python").lower() if t is not None else None
                 for r, t in zip(rows, tests, strict=True)]
    bad = next((lang for lang in languages if lang is not None and lang not in CODE_LANGUAGES), None)
    if bad:
        raise DistillError(f"prompts '{src}' ask for {bad!r} code; the sandbox runs {', '.join(CODE_LANGUAGES)} only: "
                           "drop those rows or set their language to python")
    return {
        "tests": tests,
        "entry_point": [_opt_str(r.get(entry_point_field)) if t is not None else None for r, t in zip(rows, tests,
                                                                                                    strict=True)],
        "language": languages,
    }


def _tests_text(value: Any) -> str | None:
    if value is None or (isinstance(value, (str, list, dict)) and not value):
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _read_rows(src: str, split: str, subset: str | None) -> list[dict[str, Any]]:
    path = Path(src).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in PROMPT_FILE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DistillError(f"prompts directory '{src}' holds no .jsonl/.json/.parquet files")
        return [row for f in files for row in read_file(f)]
    if path.is_file():
        return read_file(path)
    if path.suffix in PROMPT_FILE_SUFFIXES or looks_local(src):
        raise DistillError(f"prompts file '{src}' not found; pass an existing .jsonl/.parquet file or a hub dataset id")
    return _read_hub(src, split, subset)


def _read_hub(dataset_id: str, split: str, subset: str | None) -> list[dict[str, Any]]:
    return hub_dataset(dataset_id, split, subset).to_list()


def _prompt_ids(rows: list[dict[str, Any]], id_field: str, problem_field: str, src: str) -> list[str]:
    if any(id_field in r and r[id_field] is not None for r in rows):
        ids = [str(r.get(id_field)) if r.get(id_field) is not None else "" for r in rows]
        if "" in ids:
            raise DistillError(f"prompts '{src}' row {ids.index('') + 1} has no '{id_field}'; every prompt needs an id")
        dupes = [i for i, n in Counter(ids).items() if n > 1]
        if dupes:
            shown = ", ".join(repr(d) for d in dupes[:3])
            raise DistillError(
                f"prompt ids in '{src}' are not unique ({len(dupes)} repeated, e.g. {shown}); de-duplicate the file "
                "or pick a unique field with --id-field"
            )
        return ids
    # No id field: a content hash is stable across runs, so resuming still skips finished prompts.
    ids, seen = [], Counter()
    for r in rows:
        base = problem_id(str(r.get(problem_field, "")))
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def _check_problems(rows: list[dict[str, Any]], ids: list[str], problem_field: str, src: str) -> None:
    for row, pid in zip(rows, ids, strict=True):
        value = row.get(problem_field)
        if not isinstance(value, str) or not value.strip():
            raise DistillError(
                f"prompt '{pid}' in '{src}' has an empty or non-text '{problem_field}' ({value!r}); fix or drop it"
            )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _default_source(src: str) -> str:
    return Path(src).stem if Path(src).exists() else src


def _column(values: list[Any]) -> pa.Array:
    """An extra prompt field as an arrow column; mixed or exotic types fall back to JSON text so that the
    value survives the trip through the journal and the shards unchanged."""
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())
    if pa.types.is_null(arr.type):
        return arr.cast(pa.string())
    if pa.types.is_temporal(arr.type) or pa.types.is_binary(arr.type) or pa.types.is_decimal(arr.type):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return arr
