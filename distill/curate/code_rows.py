"""Curate's code side: run the programs of a work unit's code rows in the sandbox, all at once, before the code
filters (no_code, failed_tests, code_timeout) read their verdicts; and the per-outcome counts of the report.

    before, after = split_chain(spec.row_chain)           # the filters before the first code filter, the rest
    prefetch(candidates_left_after_before, cfg.sandbox, workers=2)   # sets cand.code_result on each code row,
                                                           # which the code filters then read

Outcomes counted per code row (curation_report.json "code", the card's code table): the sandbox's status
(passed, wrong_answer, exception, timeout, memory, forbidden, process_limit, output_limit), no_code, or
not_run for a code row an earlier filter dropped (truncated, ...).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from distill.core.errors import DistillError
from distill.curate.filters import Candidate
from distill.grading.programs import TestsError, grade_programs, parse_tests
from distill.grading.sandbox import Limits, Result, check_sandbox, sandbox_info

CODE_FILTERS = ("no_code", "failed_tests", "code_timeout")


def wants_sandbox(filters: Sequence[str]) -> bool:
    return any(f in filters for f in ("failed_tests", "code_timeout"))


def split_chain(chain: list[str]) -> tuple[list[str], list[str]]:
    """The row chain cut before its first code filter: the cheap filters run row by row, then the code rows left
    go to the sandbox together, then the rest of the chain runs."""
    first = next((i for i, name in enumerate(chain) if name in CODE_FILTERS[1:]), len(chain))
    return chain[:first], chain[first:]


def prefetch(cands: Sequence[Candidate], limits: Limits, workers: int) -> None:
    """Sandbox verdicts for every code row with a program, many programs at once."""
    todo, items = [], []
    for cand in cands:
        if cand.is_code and cand.code is not None and cand.code_result is None:
            try:
                tests = parse_tests(cand.tests, cand.entry_point)
            except TestsError as err:
                cand.code_result = Result("exception", f"the row's tests could not be read: {err}")
                continue
            todo.append(cand)
            items.append((cand.code, tests, cand.problem))
    if not items:  # a unit without programs to run (math rows only) never touches the sandbox
        return
    for cand, result in zip(todo, grade_programs(items, limits, workers), strict=True):
        if result.status == "sandbox_error":
            raise DistillError(f"the sandbox failed on {cand.id} ({result.detail}); nothing is dropped for a "
                               "sandbox failure: fix bubblewrap (distill.grading.sandbox.check_sandbox) and re-run to resume")
        cand.code_result = result


def sandbox_workers(num_proc: int) -> int:
    """Sandboxes per curate worker process, so that all of them together keep every core busy once."""
    return max(1, (os.cpu_count() or 1) // max(1, num_proc))


def outcome(cand: Candidate, reason: str | None) -> str:
    if cand.code_result is not None:
        return cand.code_result.status
    if reason == "no_code":
        return "no_code"
    return "not_run" if reason else "passed_unchecked"


def count_outcomes(stats: dict[str, Any], cands: Sequence[tuple[Candidate, str | None]]) -> None:
    code = stats.setdefault("code", Counter())
    for cand, reason in cands:
        if cand.is_code:
            code[outcome(cand, reason)] += 1


def merge_report(unit_stats: list[dict[str, Any]], kept: int, filters: list[str]) -> dict[str, Any]:
    """The report's "code" block; {} for a run without code rows."""
    outcomes = sum((Counter(s.get("code", {})) for s in unit_stats), Counter())
    if not outcomes:
        return {}
    report: dict[str, Any] = {"rows": sum(outcomes.values()), "kept": kept,
                              "outcomes": dict(outcomes.most_common()),
                              "checked_by": "sandbox" if wants_sandbox(filters) else "not checked (no failed_tests)"}
    if wants_sandbox(filters):
        report["sandbox"] = sandbox_info(check_sandbox())
    return report
