"""Code traces through `distill generate` and `distill curate`: the code fields reach the trace rows, and a mixed
math + code trace set is curated in one run with every row kept or dropped for its own reason, code rows counted
by their sandbox outcome in the report and the card."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from test_curate import outcome, write_jsonl
from test_sandbox import MUTATE, humaneval_problems, needs_bwrap

from distill.core.shards import read_shards
from distill.core.teachers import CODE_PROMPT_SUFFIX, R1_PROMPT_SUFFIX

ASSETS = Path(__file__).parent / "assets"
A_PLUS_B = json.dumps({"inputs": ["1 2\n", "40 2\n"], "outputs": ["3\n", "42\n"]})


def fenced(code: str) -> str:
    return f"```python\n{code}```"


def code_row(pid: str, problem: str, tests: str, entry_point: str | None, answer: str, expect: str, case: str,
             reasoning: str = "Think about the cases.", finish_reason: str = "stop") -> dict:
    completion = f"<think>\n{reasoning}\n</think>\n\n{answer}"
    return {
        "id": f"{pid}/0", "prompt_id": pid, "sample": 0, "problem": problem, "answer": None, "source": "code-tiny",
        "messages": [{"role": "user", "content": f"{problem}\n{CODE_PROMPT_SUFFIX}"}], "completion": completion,
        "finish_reason": finish_reason, "prompt_tokens": 120, "completion_tokens": 200, "teacher": "deepseek-r1",
        "model": "deepseek-ai/DeepSeek-R1", "tests": tests, "entry_point": entry_point, "language": "python",
        "expect": expect, "case": case,
    }


def code_rows() -> list[dict]:
    he = humaneval_problems()

    def solution(i: int) -> str:
        return he[i]["prompt"] + he[i]["canonical_solution"]

    def row(i: int, answer: str, expect: str, case: str, **kw) -> dict:
        p = he[i]
        return code_row(p["task_id"].replace("/", "-"), p["prompt"], p["test"], p["entry_point"], answer, expect,
                        case, **kw)

    return [
        row(0, "Here it is:\n" + fenced(solution(0)), "kept", "canonical solution"),
        row(1, fenced(solution(1) + MUTATE.format(e=he[1]["entry_point"])), "failed_tests", "wrong answer"),
        row(2, "Truncate the number to its decimal part.", "no_code", "no code block"),
        row(3, fenced(f"def {he[3]['entry_point']}(operations):\n    while True:\n        pass\n"), "code_timeout",
            "infinite loop"),
        row(4, fenced(solution(4)), "kept", "code in the reasoning of a code trace",
            reasoning="Try it:\n```python\nprint(sum([1, 2]) / 2)\n```\nworks."),
        row(5, fenced(solution(5)), "truncated", "truncated code trace", finish_reason="length"),
        row(6, fenced(he[6]["canonical_solution"]), "kept", "body only: continues the prompt"),
        row(7, fenced("import socket\ndef filter_by_substring(strings, substring):\n"
                      "    socket.create_connection(('93.184.216.34', 80), timeout=3)\n    return []\n"),
            "failed_tests", "opens a socket"),
        code_row("ab-ok", "Read a and b, print a + b.", A_PLUS_B, None,
                 fenced("a, b = map(int, input().split())\nprint(a + b)\n"), "kept", "stdin/stdout, correct"),
        code_row("ab-bad", "Read a and b, print a + b (again).", A_PLUS_B, None,
                 fenced("a, b = map(int, input().split())\nprint(a * b + 1)\n"), "failed_tests",
                 "stdin/stdout, wrong"),
    ]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("code_curate")
    math = [json.loads(line) for line in (ASSETS / "traces_tiny.jsonl").read_text().splitlines()]
    rows = math + code_rows()
    src = write_jsonl(rows, tmp / "traces.jsonl")
    result = run_cli("curate", src, "--out", tmp / "out", "--eval-data-dir", shared_data, "--num-proc", "2",
                     "--set", "unit_rows=6", "--set", "wrong_answer.timeout=1", "--set", "failed_tests.test_timeout=2",
                     "--set", "failed_tests.program_timeout=5")
    assert result.returncode == 0, result.stderr
    return rows, tmp / "out", result


@needs_bwrap
def test_mixed_math_and_code_rows_each_kept_or_dropped_for_its_reason(mixed):
    rows, out, result = mixed
    got = outcome(out)
    assert len(got) == len(rows)
    wrong = {r["case"]: (r["expect"], got.get(r["id"])) for r in rows if got.get(r["id"]) != r["expect"]}
    assert wrong == {}
    report = json.loads((out / "curation_report.json").read_text())
    assert report["counts"]["kept"] + sum(report["counts"]["dropped"].values()) == len(rows)
    details = {r["id"]: r["detail"] for r in pq.read_table(out / "rejected.parquet").to_pylist()}
    assert details["HumanEval-1/0"].startswith("wrong_answer at tests line")  # which test, and why
    assert "forbidden" in details["HumanEval-7/0"] and "network" in details["HumanEval-7/0"]
    assert details["ab-bad/0"] == "wrong_answer at case 1: expected '42', got '81'"
    assert "timeout" in details["HumanEval-3/0"]
    assert "code rows" in result.stdout


@needs_bwrap
def test_report_and_card_count_code_rows_by_outcome(mixed):
    rows, out, _ = mixed
    report = json.loads((out / "curation_report.json").read_text())
    code = report["code"]
    assert code["rows"] == 10 and code["kept"] == 4
    assert code["outcomes"] == {"passed": 4, "wrong_answer": 2, "forbidden": 1, "timeout": 1, "no_code": 1,
                                "not_run": 1}
    assert "bubblewrap" in code["sandbox"]["bwrap"]
    assert report["kept_by"]["task"] == {"math": sum(r["expect"] == "kept" for r in rows if "tests" not in r),
                                         "code": 4}
    card = (out / "README.md").read_text()
    assert "## Code rows" in card and "| forbidden | 1 |" in card and "- code\n" in card


def test_generate_carries_the_code_fields_and_asks_for_a_code_block(tmp_path, tiny_model):
    prompts = tmp_path / "p.jsonl"
    he = humaneval_problems()[:2]
    rows = [{"task_id": p["task_id"], "prompt": p["prompt"], "test": p["test"], "entry_point": p["entry_point"]}
            for p in he] + [{"task_id": "math-1", "prompt": "What is 1 + 1?", "answer": "2"}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "transformers",
                  "--model", tiny_model, "--max-tokens", "4", "--id-field", "task_id", "--problem-field", "prompt",
                  "--tests-field", "test")
    assert res.returncode == 0, res.stderr
    table = read_shards(tmp_path / "gen" / "traces")
    assert table.column_names[13:16] == ["tests", "entry_point", "language"]  # right after the TRACE columns
    traces = {r["prompt_id"]: r for r in table.to_pylist()}
    first = traces["HumanEval/0"]
    assert (first["tests"], first["entry_point"], first["language"]) == (he[0]["test"], he[0]["entry_point"], "python")
    assert first["messages"][0]["content"].endswith(CODE_PROMPT_SUFFIX)
    math = traces["math-1"]
    assert (math["tests"], math["entry_point"], math["language"]) == (None, None, None)
    assert math["messages"][0]["content"].endswith(R1_PROMPT_SUFFIX)


def test_prompts_with_tests_in_another_language_are_refused(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "c1", "problem": "Print 1.", "tests": "assert True", "language": "rust"}))
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "transformers",
                  "--model", "unused")
    assert res.returncode == 2 and "'rust'" in res.stderr and "python" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_public_code_set_shapes_load_as_a_field_mapping(tmp_path):
    from distill.generate.prompts import load_prompts
    from distill.grading.programs import parse_tests

    rows = [  # MBPP (test_list), APPS (input_output as JSON text), CodeContests (a dict), and a math row
        {"id": "mbpp-1", "text": "Write add(a, b).", "test_list": ["assert add(1, 2) == 3"]},
        {"id": "apps-1", "text": "Print a+b.", "test_list": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})},
        {"id": "cc-1", "text": "Print a+b.", "test_list": {"input": ["1 2\n"], "output": ["3\n"]}},
        {"id": "math-1", "text": "1 + 1?", "answer": "2"},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = load_prompts(str(path), problem_field="text", tests_field="test_list").to_pylist()
    assert [r["language"] for r in table] == ["python", "python", "python", None]
    assert parse_tests(table[0]["tests"]).asserts == "assert add(1, 2) == 3\n"
    assert parse_tests(table[1]["tests"]).cases == (("1 2\n", "3\n"),) == parse_tests(table[2]["tests"]).cases
    assert table[3]["tests"] is None and table[3]["answer"] == "2"
