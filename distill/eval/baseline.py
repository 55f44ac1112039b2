"""The base model beside the student: which earlier `distill eval` output holds the base model's numbers.

    baseline = find_baseline("runs/eval/Qwen2.5-Math-1.5B", out, lineage)   # from --baseline DIR
    baseline = find_baseline(None, out, lineage)                             # found through the sft manifest
    # {"path": ".../runs/eval/Qwen2.5-Math-1.5B", "model": "Qwen/Qwen2.5-Math-1.5B", "found_by": "--baseline",
    #  "protocol": {"reasoning": "off", "max_tokens": 4096, ...}, "tasks": {"math500": {"pass@1": 0.31, ...}}}

Reads DIR/results.json of an earlier eval; writes nothing. Without --baseline, the student's base model (the sft
manifest's `student`) is looked for where `distill eval --model BASE` writes by default, runs/eval/<base name>,
and beside this eval's own output dir; a results.json there counts only when it is an eval of that base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.stage_dirs import RESULTS

TASK_KEYS = ("pass@1", "pass@1_stderr", "cons@k", "pass@k", "k", "n", "truncated", "mean_tokens", "limit")
PROTOCOL_KEYS = ("reasoning", "reasoning_why", "system_prompt", "think_prefill", "temperature", "top_p",
                 "max_tokens", "limit")


def find_baseline(given: str | None, out: Path, lineage: dict[str, Any]) -> dict[str, Any] | None:
    """The base model's eval: the dir given, else the one the lineage's base model was evaluated into, else None."""
    if given:
        path = Path(given).expanduser()
        return baseline_record(path, read_eval(path), "--baseline")
    base = (lineage.get("sft") or {}).get("student")
    if not base:
        return None
    for place in candidates(str(base), out):
        results = read_eval(place, required=False)
        if results and same_model(results.get("model"), str(base)):
            return baseline_record(place, results, f"the sft manifest's base model {base}, evaluated in {place}")
    return None


def candidates(base: str, out: Path) -> list[Path]:
    """Where `distill eval --model BASE` would have written: runs/eval/<name> (its default) or beside OUT."""
    name = Path(base.rstrip("/")).name
    places = [out.parent / name, Path("runs") / "eval" / name]
    seen, found = {out.resolve()}, []
    for place in places:
        if place.resolve() not in seen:
            seen.add(place.resolve())
            found.append(place)
    return found


def read_eval(path: Path, required: bool = True) -> dict[str, Any] | None:
    """DIR/results.json of a finished eval; a one-line error (or None when not required) when it is not one."""
    file = path / RESULTS
    if not file.is_file():
        if required:
            raise DistillError(f"--baseline {path} holds no results.json; pass the output dir of an earlier "
                               "`distill eval --model BASE_MODEL` (default runs/eval/<base name>)")
        return None
    try:
        results = json.loads(file.read_text())
    except json.JSONDecodeError:
        if required:
            raise DistillError(f"--baseline {file} is not valid JSON; re-run that eval, or pass another dir") from None
        return None
    if not isinstance(results, dict) or not results.get("tasks"):
        if required:
            raise DistillError(f"--baseline {file} holds no finished task; let that eval finish, or pass another dir")
        return None
    return results


def baseline_record(path: Path, results: dict[str, Any], found_by: str) -> dict[str, Any]:
    protocol = results.get("protocol") or {}
    return {
        "path": str(path.resolve()),
        "model": results.get("model"),
        "found_by": found_by,
        "protocol": {k: protocol.get(k) for k in PROTOCOL_KEYS},
        "tasks": {name: {k: t.get(k) for k in TASK_KEYS} for name, t in results["tasks"].items()},
    }


def same_model(a: str | None, b: str | None) -> bool:
    """Hub ids match case-insensitively, and a local copy matches by its folder name (/models/Qwen2.5-Math-1.5B)."""
    if not a or not b:
        return False
    a, b = a.rstrip("/").lower(), b.rstrip("/").lower()
    return a == b or a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def differences(student: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """Where the base model's eval was run differently from the student's (the report lists them)."""
    notes = []
    mine, theirs = student.get("protocol") or {}, baseline.get("protocol") or {}
    for key in ("max_tokens", "temperature", "top_p", "system_prompt"):
        if theirs.get(key) != mine.get(key):
            notes.append(f"base model: {key.replace('_', ' ')} {theirs.get(key)!r} (this model: {mine.get(key)!r})")
    for name, t in student.get("tasks", {}).items():
        b = baseline["tasks"].get(name)
        if b is None:
            notes.append(f"base model: {name} was not evaluated")
        elif (b.get("k"), b.get("n")) != (t.get("k"), t.get("n")):
            notes.append(f"base model: {name} with k = {b.get('k')} on {b.get('n')} problems (this model: k = "
                         f"{t.get('k')} on {t.get('n')})")
    return notes
