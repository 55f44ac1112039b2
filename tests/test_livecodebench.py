"""LiveCodeBench: hub-format rows (invented problems, never copies of real ones) become code eval docs for a
contest-date window; functional (LeetCode `class Solution`) and stdin/stdout problems pass or fail in the real
sandbox; the compressed private tests are decoded; curate verifies TACO-style `fn_name` traces; and
`distill eval --tasks livecodebench` runs end to end on the tiny model."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

import pytest
from conftest import run_cli
from test_code_curate import code_row, fenced
from test_curate import outcome, write_jsonl
from test_sandbox import needs_bwrap

from distill.core.errors import DistillError
from distill.eval.code_hooks import score_problem
from distill.eval.livecodebench import decode_cases, load_rows, parse_window


def compress(cases: list[dict]) -> str:
    """The hub's form of newer private tests: base64 of zlib of a pickled JSON string."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def functional(n: str, out: str) -> dict:
    return {"input": n, "output": out, "testtype": "functional"}


EVENS = {  # LeetCode-style, call-based; the private tests in the compressed form
    "question_title": "Even Split", "platform": "leetcode", "question_id": "9001", "contest_id": "weekly-contest-900",
    "contest_date": "2024-09-14T00:00:00", "difficulty": "easy",
    "question_content": "Given an array nums, return the even numbers and then the odd ones, each in order.",
    "starter_code": "class Solution:\n    def evenSplit(self, nums: List[int]) -> List[List[int]]:\n        ",
    "public_test_cases": json.dumps([functional("[1,2,3,4]", "[[2, 4], [1, 3]]")]),
    "private_test_cases": compress([functional("[5]", "[[], [5]]"), functional("[2,2]", "[[2, 2], []]")]),
    "metadata": json.dumps({"func_name": "evenSplit"}),
}
TRIANGLE = {  # AtCoder-style stdin/stdout; its private tests as plain JSON (the older releases' form)
    "question_title": "Triangle Number", "platform": "atcoder", "question_id": "abc900_a", "contest_id": "abc900",
    "contest_date": "2025-01-31T12:00:00", "difficulty": "easy", "starter_code": "",
    "question_content": "Given N, print 1 + 2 + ... + N.",
    "public_test_cases": json.dumps([{"input": "3\n", "output": "6\n", "testtype": "stdin"}]),
    "private_test_cases": json.dumps([{"input": "10\n", "output": "55\n", "testtype": "stdin"}]),
    "metadata": "{}",
}
OLD = {**TRIANGLE, "question_id": "abc800_a", "contest_date": "2024-07-31T23:00:00"}  # a day before R1's window
GOOD_EVENS = ("class Solution:\n    def evenSplit(self, nums):\n"
              "        return ([x for x in nums if x % 2 == 0], tuple(x for x in nums if x % 2))\n")
BAD_EVENS = GOOD_EVENS.replace("x % 2 == 0", "x % 2 == 1")
GOOD_TRIANGLE = "n = int(input())\nprint(n * (n + 1) // 2)\n"


def answer(code: str) -> str:
    return f"<think>\nWork it out.\n</think>\n\n{fenced(code)}"


def test_the_window_selects_rows_by_contest_date_both_ends_included():
    docs = load_rows([EVENS, TRIANGLE, OLD])  # R1's window by default
    assert [d["id"] for d in docs] == ["9001", "abc900_a"]
    assert [d["id"] for d in load_rows([EVENS, TRIANGLE, OLD], "2024-07-01:2024-08-31")] == ["abc800_a"]
    assert parse_window("2024-08-01:2025-01-31")[1].isoformat() == "2025-01-31"
    evens = docs[0]
    assert evens["entry_point"] == "evenSplit" and evens["contest_date"] == "2024-09-14"
    assert "starter code" in evens["problem"] and "def evenSplit(self" in evens["problem"]
    assert "stdin" in docs[1]["problem"] and docs[1]["entry_point"] == ""


def test_the_compressed_private_tests_are_decoded():
    cases = [functional("[5]", "[[], [5]]")]
    assert decode_cases(compress(cases)) == cases == decode_cases(json.dumps(cases))
    assert len(json.loads(load_rows([EVENS])[0]["tests"])) == 3  # public + private
    evil = base64.b64encode(zlib.compress(pickle.dumps(Path("/")))).decode()
    with pytest.raises(pickle.UnpicklingError):  # builds no objects: only plain data
        decode_cases(evil)


@pytest.mark.parametrize("window", ["2024-08", "2025-01-31:2024-08-01", "2024-08-01..2025-01-31",
                                    "2024-13-01:2025-01-01"])
def test_a_window_that_is_not_start_end_is_refused(window):
    with pytest.raises(DistillError, match="START:END"):
        parse_window(window)


def test_a_row_missing_a_column_names_it_and_the_fix():
    row = {k: v for k, v in TRIANGLE.items() if k != "private_test_cases"}
    with pytest.raises(DistillError, match=r"row 0 \(abc900_a\) has no private_test_cases: each row needs"):
        load_rows([row])
    no_name = {**EVENS, "metadata": "{}"}
    with pytest.raises(DistillError, match="func_name"):
        load_rows([no_name])
    for bad, says in (({"contest_date": "soon"}, "not an ISO date"), ({"metadata": "{func"}, "metadata is not JSON"),
                      ({"private_test_cases": "not base64!"}, "neither JSON nor the hub's compressed form")):
        with pytest.raises(DistillError, match=says):
            load_rows([{**EVENS, **bad}])


@needs_bwrap
def test_functional_and_stdin_problems_pass_and_fail_in_the_sandbox():
    evens, triangle = load_rows([EVENS, TRIANGLE])
    score, verdicts = score_problem([answer(GOOD_EVENS), answer(BAD_EVENS)], evens)
    assert score.correct == (True, False), verdicts  # the tuple returned is read as a list, as LiveCodeBench does
    assert verdicts[1].status == "wrong_answer" and verdicts[1].test == "call 0"
    top_level = "def evenSplit(nums):\n    return [[x for x in nums if x % 2 == 0], [x for x in nums if x % 2]]\n"
    assert score_problem([answer(top_level)], evens)[0].correct == (True,)
    wrong = GOOD_TRIANGLE.replace("// 2", "// 2 + 1")
    score, verdicts = score_problem([answer(GOOD_TRIANGLE), answer(wrong)], triangle)
    assert score.correct == (True, False) and verdicts[1].detail == "expected '6', got '7'"


TACO_TESTS = json.dumps({"fn_name": "pair_sum", "inputs": [[[1, 2, 3], 4], [[5], 5]], "outputs": [[True], [False]]})


@needs_bwrap
def test_curate_verifies_taco_style_fn_name_traces(tmp_path, shared_data):
    problem = "Write pair_sum(nums, target): do two different entries of nums add up to target?"
    good = "def pair_sum(nums, target):\n    return any(nums[i] + nums[j] == target\n" \
           "               for i in range(len(nums)) for j in range(i + 1, len(nums)))\n"
    rows = [code_row("taco-ok", problem, TACO_TESTS, None, fenced(good), "kept", "fn_name, correct"),
            code_row("taco-bad", "Given nums and target, tell whether a pair of nums sums to target.", TACO_TESTS,
                     None, fenced("def pair_sum(nums, target):\n    return target in nums\n"), "failed_tests",
                     "fn_name, wrong")]
    src = write_jsonl(rows, tmp_path / "traces.jsonl")
    res = run_cli("curate", src, "--out", tmp_path / "out", "--eval-data-dir", shared_data, "--num-proc", "1",
                  "--set", "failed_tests.test_timeout=2", "--set", "failed_tests.program_timeout=5")
    assert res.returncode == 0, res.stderr
    assert outcome(tmp_path / "out") == {"taco-ok/0": "kept", "taco-bad/0": "failed_tests"}
    report = json.loads((tmp_path / "out" / "curation_report.json").read_text())
    assert report["code"]["outcomes"] == {"passed": 1, "wrong_answer": 1}


# ---------------------------------------------------------------- distill eval --tasks livecodebench

REPO = Path(__file__).parent.parent


@pytest.fixture
def data_dir(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl([EVENS, TRIANGLE, OLD], data / "livecodebench.jsonl")
    return data


@needs_bwrap
def test_the_lm_eval_task_loads_the_window_and_scores_in_the_sandbox(data_dir):
    from lm_eval.tasks import TaskManager

    from distill.eval.code_hooks import grade_all, process_results

    manager = TaskManager(include_path=str(REPO / "eval"), include_defaults=False,
                          metadata={"data_dir": str(data_dir)})
    task = manager.load(["distill_livecodebench"])["tasks"]["distill_livecodebench"]
    docs = list(task.eval_docs)
    assert [d["id"] for d in docs] == ["9001", "abc900_a"]  # R1's window, the task's default
    gen = task.config.generation_kwargs
    assert (gen["temperature"], gen["top_p"], gen["until"], task.config.repeats) == (0.6, 0.95, [], 16)
    assert task.doc_to_text(docs[0]).endswith("```python code block.")
    responses = [[answer(GOOD_EVENS), answer(BAD_EVENS)], [answer(GOOD_TRIANGLE), "<think>\nno end"]]
    grade_all(responses, docs)
    assert process_results(docs[0], [responses[0]]) == {"pass@1": 0.5, "pass@k": 1.0, "truncated": 0.0}
    assert process_results(docs[1], [responses[1]])["truncated"] == 0.5


@needs_bwrap
def test_distill_eval_livecodebench_end_to_end_on_the_tiny_model(tmp_path, tiny_model, data_dir):
    out = tmp_path / "eval"
    res = run_cli("eval", "--model", tiny_model, "--tasks", "livecodebench", "--backend", "hf", "--samples", "2",
                  "--max-tokens", "16", "--data-dir", data_dir, "--out", out,
                  "--set", "livecodebench.window=2024-09-01:2025-01-31", "--published", "DeepSeek-R1-Distill-Qwen-7B")
    assert res.returncode == 0, res.stderr
    results = json.loads((out / "results.json").read_text())
    t = results["tasks"]["livecodebench"]
    assert (t["n"], t["k"], t["samples"]) == (2, 2, 4)  # the row before the window is left out
    assert t["pass@1"] == 0.0 and t["grader"].startswith("sandbox")
    samples = [json.loads(line) for line in (out / "samples" / "livecodebench.jsonl").read_text().splitlines()]
    assert {s["id"] for s in samples} == {"9001", "abc900_a"}
    assert all(s["outcome"] == "no_code" for s in samples)  # a random model writes no code; each is recorded
    assert "2024-09-01:2025-01-31" in json.dumps(results)  # the window is part of the recorded data source
    assert "livecodebench pass@1" in res.stdout
    report = (out / "report.md").read_text()  # beside the published student and teacher, window flagged
    assert "37.6 [1]" in report and "65.9 [1]" in report
    assert "contest dates 2024-09-01:2025-01-31 (published: contest dates 2024-08-01:2025-01-31)" in report


def test_distill_eval_refuses_a_bad_window_or_row_in_one_line(tmp_path, tiny_model):
    data = tmp_path / "bad"
    data.mkdir()
    write_jsonl([{k: v for k, v in TRIANGLE.items() if k != "question_content"}], data / "livecodebench.jsonl")
    base = ["eval", "--model", tiny_model, "--tasks", "livecodebench", "--backend", "hf", "--data-dir", data,
            "--out", tmp_path / "eval"]
    for extra, says in ((["--set", "livecodebench.window=2024-08"], "START:END"),
                        ([], "has no question_content")):
        res = run_cli(*base, *extra)
        assert res.returncode == 2 and says in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
