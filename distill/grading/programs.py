"""The grader of code answers, used by curate (keep a trace only when its program passes) and by the code eval
tasks: find the program in a completion, build the test program for the problem's tests, run it in the sandbox.

    tests = parse_tests('def check(candidate):\\n    assert candidate(2) == 4\\n', entry_point="double")
    code = extract_code("<think>\\nDouble it.\\n</think>\\n\\n```python\\ndef double(x):\\n    return 2 * x\\n```")
    grade_programs([(code, tests, None)])    # [Result(status='passed', ...)]

A code problem's tests come in the shapes public sets use, all held in one text field `tests`:
- assert-style Python (HumanEval's `test` with `check(candidate)` + `entry_point`; MBPP's asserts, or its
  `test_list` as a JSON list of assert strings): run after the program, then `check(entry_point)` if defined;
- stdin/stdout cases as JSON: APPS/TACO's `input_output` `{"inputs": [...], "outputs": [...]}`, CodeContests'
  `{"input": [...], "output": [...]}`, or a list of `{"input": ..., "output": ...}`: the program runs once per
  case with that stdin, and its stdout must match (up to trailing whitespace);
- call-based cases, where a function is called and its return value compared: APPS/TACO's `input_output` with
  `fn_name` (`inputs` a list of argument lists), and LiveCodeBench's `{"input", "output", "testtype": "functional"}`
  cases (one JSON value per argument, a line each; the function's name comes as `entry_point`). The function is
  `Solution().<name>` when the program defines `class Solution` (LeetCode), else the top-level `<name>`.

The answer of a code completion is the last fenced Python block (```python, ```py or bare ```) after
`</think>`; a completion that never closes its reasoning has no answer, as for math.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from distill.core.protocol import split_think
from distill.grading.sandbox import Job, Limits, Result, run_many

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.S)
_PY_TAGS = ("", "python", "py", "python3")
_IMPORT = re.compile(r"^(?:from\s+\S+\s+)?import\s+.+$", re.M)


@dataclass(frozen=True)
class CodeTests:
    """A problem's tests, parsed: assert-style code (`asserts`), stdin/stdout `cases`, or call-based `calls`
    (JSON of the argument list, JSON of the expected value) on the function `entry_point`. `loose`: APPS's rule
    that an expected value wrapped in a one-item list (`[[3]]` for 3) also matches its item."""

    asserts: str | None = None
    entry_point: str | None = None
    cases: tuple[tuple[str, str], ...] | None = None
    calls: tuple[tuple[str, str], ...] | None = None
    loose: bool = False

    @property
    def count(self) -> int:
        cases = self.cases if self.cases is not None else self.calls
        return len(cases) if cases is not None else 1


class TestsError(ValueError):
    """A `tests` value in none of the known shapes."""


def parse_tests(tests: Any, entry_point: str | None = None) -> CodeTests:
    """Any supported shape (text, or the list/dict a dataset loader gave) -> CodeTests."""
    value = tests
    if isinstance(tests, str) and tests.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(tests)
        except json.JSONDecodeError:
            value = tests  # Python that starts with a bracket
    if isinstance(value, str):
        if not value.strip():
            raise TestsError("empty tests")
        return CodeTests(asserts=value, entry_point=entry_point or None)
    if isinstance(value, dict):
        if value.get("fn_name"):
            return _apps_calls(value)
        inputs = value.get("inputs", value.get("input"))
        outputs = value.get("outputs", value.get("output"))
        if isinstance(inputs, list) and isinstance(outputs, list) and len(inputs) == len(outputs) and inputs:
            return CodeTests(cases=tuple((_text(i), _text(o)) for i, o in zip(inputs, outputs, strict=True)),
                             entry_point=entry_point or None)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return CodeTests(asserts="\n".join(value) + "\n", entry_point=entry_point or None)
    if isinstance(value, list) and value and all(isinstance(v, dict) and {"input", "output"} <= set(v) for v in value):
        if any(v.get("testtype") == "functional" for v in value):
            return _functional_calls(value, entry_point)
        return CodeTests(cases=tuple((_text(v["input"]), _text(v["output"])) for v in value),
                         entry_point=entry_point or None)
    raise TestsError(f"tests of an unknown shape ({type(value).__name__}: {str(value)[:60]!r}); give assert code or "
                     '{"inputs": [...], "outputs": [...]}')


def _apps_calls(value: dict[str, Any]) -> CodeTests:
    """APPS/TACO `{"fn_name": "f", "inputs": [[1, 2], ...], "outputs": [[3], ...]}`: one argument list per call."""
    inputs, outputs = value.get("inputs"), value.get("outputs")
    if not (isinstance(inputs, list) and isinstance(outputs, list) and inputs and len(inputs) == len(outputs)):
        raise TestsError(f"call-based tests of {value['fn_name']!r} need as many inputs as outputs, at least one")
    calls = tuple((json.dumps(args if isinstance(args, list) else [args]), json.dumps(out))
                  for args, out in zip(inputs, outputs, strict=True))
    return CodeTests(entry_point=str(value["fn_name"]), calls=calls, loose=True)


def _functional_calls(cases: list[dict[str, Any]], entry_point: str | None) -> CodeTests:
    """LiveCodeBench's functional cases: `input` holds one JSON value per argument, a line each; `output` one
    JSON value. Its own runner compares the return value (a tuple read as a list) with `==`, so `loose` is off."""
    if not entry_point:
        raise TestsError("functional (call-based) test cases need the function's name: pass it as entry_point "
                         "(LiveCodeBench's metadata.func_name)")
    if any(v.get("testtype", "stdin") != "functional" for v in cases):
        raise TestsError("a test list mixes functional and stdin cases; give one kind per problem")
    try:
        calls = tuple((json.dumps([json.loads(line) for line in str(v["input"]).split("\n") if line.strip()]),
                       json.dumps(json.loads(v["output"]))) for v in cases)
    except (json.JSONDecodeError, TypeError) as err:
        raise TestsError(f"a functional case is not one JSON value per line: {err}") from err
    return CodeTests(entry_point=entry_point, calls=calls)


def _text(value: Any) -> str:
    """A case's input or output; APPS sometimes stores one as a list of lines."""
    if isinstance(value, list):
        return "\n".join(map(str, value)) + "\n"
    return str(value)


def extract_code(completion: str) -> str | None:
    """The last fenced Python block after `</think>` (None: no block, or reasoning never closed)."""
    reasoning, answer = split_think(completion)
    if answer is None:
        return None
    blocks = [body for tag, body in _FENCE.findall(answer) if tag.lower() in _PY_TAGS]
    return blocks[-1].strip("\n") + "\n" if blocks and blocks[-1].strip() else None


def build_program(code: str, tests: CodeTests, prompt: str | None = None) -> str:
    """The program the tests run against. HumanEval prompts are a signature and docstring: a completion that
    continues the body (no `def <entry_point>` of its own) is appended to the prompt; a whole function gets
    the prompt's imports (`from typing import List`) in front, which chat answers often leave out."""
    entry = tests.entry_point
    if tests.calls is not None:  # the program is whole (a class Solution or a function); the prompt is prose
        return code
    if prompt and entry and not re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.M):
        if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", prompt, re.M):
            return prompt + code
    imports = "\n".join(_IMPORT.findall(prompt or "")) if prompt and entry else ""
    return f"{imports}\n{code}" if imports else code


def job_for(code: str, tests: CodeTests, prompt: str | None = None) -> Job:
    program = build_program(code, tests, prompt)
    if tests.cases is not None:
        return Job(code=program, cases=tests.cases)
    if tests.calls is not None:
        return Job(code=program, entry_point=tests.entry_point, calls=tests.calls, loose=tests.loose)
    return Job(code=program, tests=tests.asserts, entry_point=tests.entry_point)


def grade_programs(items: Sequence[tuple[str, CodeTests, str | None]], limits: Limits | None = None,
                   workers: int | None = None, on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Run each (code, tests, prompt) in the sandbox, many at once; identical programs on identical tests run
    once (k samples of one problem often write the same program)."""
    jobs = [job_for(code, tests, prompt) for code, tests, prompt in items]
    unique = list(dict.fromkeys(jobs))
    results = dict(zip(unique, run_many(unique, limits, workers, on_result), strict=True))
    return [results[j] for j in jobs]


def describe(result: Result) -> str:
    """One line for a rejected row: which test, and why."""
    where = f"{result.test}: " if result.test else ""
    return f"{result.status} at {where}{result.detail}".strip()[:300] if result.test else \
        f"{result.status}: {result.detail}"[:300]
