"""The lm-eval hooks of the code task families under `eval/` (distill_humaneval, distill_livecodebench): docs,
the prompt, and scoring by running every sample's program in the sandbox.

    # eval/humaneval/distill_humaneval.yaml
    class: !function utils.ReasoningTask     # the R1 protocol knobs and the <think> prefill (distill.eval.math_hooks)
    process_docs: !function utils.process_docs
    doc_to_text: !function utils.doc_to_text
    process_results: !function utils.process_results
    metadata: {grader: code, ...}           # tells `distill eval` to score samples with score_problem below

A doc after `process_docs`: {"id": "HumanEval/0", "problem": "from typing import List\\n\\ndef has_close_...",
"tests": "def check(candidate): ...", "entry_point": "has_close_elements", ...}. Stdin/stdout sets give `tests`
as {"inputs": [...], "outputs": [...]} and no entry point; LiveCodeBench (distill/eval/livecodebench.py) gives its
case list, with the function's name as entry point when the cases are functional.

Scoring (the same grader as curate, distill/grading/programs.py): the program is the last fenced Python block after
`</think>`; a sample is correct when it passes every test. pass@1 is the mean over the k samples, pass@k the
unbiased estimator (distill.eval.metrics.pass_at_k); cons@k has no meaning for programs and is left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from distill.core.protocol import CODE_PROMPT_SUFFIX, THINK_CLOSE, user_prompt
from distill.eval.metrics import ProblemScore
from distill.grading.programs import CodeTests, TestsError, extract_code, grade_programs, parse_tests
from distill.grading.sandbox import Limits, Result

ID_KEYS = ("task_id", "id", "question_id", "problem_id")
PROBLEM_KEYS = ("prompt", "problem", "question_content", "question")
TESTS_KEYS = ("test", "tests", "input_output")
# HumanEval's prompt is a signature with a docstring: the instruction asks for the whole function back, in the
# form the code grader reads (and generate asks its teachers for: distill.core.protocol.CODE_PROMPT_SUFFIX)
FUNCTION_PROMPT = "Complete the following Python function.\n\n```python\n{prompt}```"

_VERDICTS: dict[tuple[str, str], Result] = {}  # (doc id, response) -> verdict, filled by grade_all


def process_docs(dataset):
    """Any source's fields -> `id, problem, tests, entry_point` (strings; entry_point may be empty)."""
    import datasets

    return datasets.Dataset.from_list([_normalize_doc(row, i) for i, row in enumerate(dataset)])


def _normalize_doc(row: dict[str, Any], index: int) -> dict[str, Any]:
    problem = next((row[k] for k in PROBLEM_KEYS if row.get(k)), None)
    tests = next((row[k] for k in TESTS_KEYS if row.get(k)), None)
    assert problem is not None and tests is not None, (
        f"code eval doc {index} has no problem/tests field (fields: {', '.join(row)}); expected one of "
        f"{PROBLEM_KEYS} and {TESTS_KEYS}")
    doc_id = next((row[k] for k in ID_KEYS if row.get(k) is not None), index)
    entry = row.get("entry_point") or ""
    tests = tests if isinstance(tests, str) else json.dumps(tests)
    return {**row, "id": str(doc_id), "problem": str(problem), "tests": tests, "entry_point": entry}


def doc_to_text(doc: dict[str, Any]) -> str:
    problem = FUNCTION_PROMPT.format(prompt=doc["problem"]) if doc.get("entry_point") else doc["problem"]
    return user_prompt(problem, CODE_PROMPT_SUFFIX)


def _tests(doc: dict[str, Any]) -> CodeTests | None:
    try:
        return parse_tests(doc["tests"], doc.get("entry_point") or None)
    except TestsError:
        return None


def grade_all(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    """lm-eval filter: run every sample's program of the whole task in the sandbox at once (all cores), then
    pass the responses on unchanged for process_results, which finds the verdicts cached."""
    resps = list(resps)
    prefetch(list(zip(resps, docs, strict=True)))
    return resps


def prefetch(problems: Sequence[tuple[Sequence[str], dict[str, Any]]], limits: Limits | None = None) -> None:
    keys, items = [], []
    for responses, doc in problems:
        tests = _tests(doc)
        for response in responses:
            code = extract_code(response)
            key = (doc["id"], response)
            if code is not None and tests is not None and key not in _VERDICTS:
                keys.append(key)
                items.append((code, tests, doc["problem"]))
    for key, result in zip(keys, grade_programs(items, limits), strict=True):
        _VERDICTS[key] = result


def sample_verdicts(responses: Sequence[str], doc: dict[str, Any]) -> list[Result]:
    """A verdict per response: no_code (no block, or the reasoning never closed), bad_tests, or the sandbox's."""
    prefetch([(responses, doc)])
    tests = _tests(doc)
    out = []
    for response in responses:
        if tests is None:
            out.append(Result("bad_tests", "the problem's tests could not be read"))
        elif extract_code(response) is None:
            out.append(Result("no_code", "no ```python block after </think>"))
        else:
            out.append(_VERDICTS[(doc["id"], response)])
    return out


def score_problem(responses: Sequence[str], doc: dict[str, Any]) -> tuple[ProblemScore, list[Result]]:
    verdicts = sample_verdicts(responses, doc)
    score = ProblemScore(
        answers=tuple(extract_code(r) for r in responses), correct=tuple(v.passed for v in verdicts),
        truncated=tuple(THINK_CLOSE not in r for r in responses), majority_correct=None,
    )
    return score, verdicts


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    responses = results[0] if results and isinstance(results[0], (list, tuple)) else results
    score, _ = score_problem(responses, doc)
    return {"pass@1": score.pass_at_1, "pass@k": score.pass_at(score.samples),
            "truncated": sum(score.truncated) / score.samples}


def clear_cache() -> None:
    _VERDICTS.clear()
