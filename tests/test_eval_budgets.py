"""`distill eval --budgets`: accuracy against thinking budget by budget forcing, on the parrot model (it answers
every prompt with a ~30-token think block, then "The answer is $\\boxed{5}$." and EOS). With an answer budget
of 4 tokens a forced sample cannot write its boxed answer (that takes more than 4 tokens): a budget of 3 is
wrong on every sample for a structural reason, a budget of 64 (above the reply's length) changes nothing."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli


@pytest.fixture
def fives(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": f"p{i}", "problem": f"What is {i} + {5 - i}?", "answer": "5"} for i in range(3)]
    (data / "math500.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_budget_curve_forces_short_budgets_and_leaves_long_ones_alone(parrot_model, fives, tmp_path):
    out = tmp_path / "eval"
    base = ["eval", "--model", parrot_model, "--tasks", "math500", "--backend", "hf", "--samples", "2",
            "--max-tokens", "80", "--data-dir", fives, "--out", out, "--set", "budget_answer_tokens=4"]
    proc = run_cli(*base, "--budgets", "64,3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    task = json.loads((out / "results.json").read_text())["tasks"]["math500"]
    assert task["pass@1"] == 1.0  # unforced: every sample boxes 5
    curve = task["budget_curve"]
    assert list(curve) == ["3", "64"]  # sorted by budget
    assert curve["3"]["forced"] == 1.0 and curve["3"]["pass@1"] == 0.0 and curve["3"]["mean_think_tokens"] <= 3
    assert curve["64"]["forced"] == 0.0 and curve["64"]["pass@1"] == 1.0
    assert 10 < curve["64"]["mean_think_tokens"] < 64 and curve["64"]["k"] == 2 and curve["64"]["n"] == 3
    report = (out / "report.md").read_text()
    assert "## Accuracy against thinking budget" in report and "| 3 | 0.0" in report and "| unforced | 100.0" in report
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG" and not (out / ".journal").exists()

    # a new budget later: only it is drawn; the task and the other points are kept as they were
    samples = (out / "samples" / "math500.jsonl").read_bytes()
    again = run_cli(*base, "--budgets", "3,16,64")
    assert again.returncode == 0, again.stderr[-3000:]
    after = json.loads((out / "results.json").read_text())["tasks"]["math500"]
    assert list(after["budget_curve"]) == ["3", "16", "64"] and after["budget_curve"]["3"] == curve["3"]
    assert (out / "samples" / "math500.jsonl").read_bytes() == samples
    assert "budgets math500" in again.stderr and "budgets 16;" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["--budgets", "256,x"], "--budgets takes positive token counts"),
    (["--budgets", "100", "--max-tokens", "512"], "exceeds --max-tokens 512"),
    (["--budgets", "64", "--reasoning", "off"], "--reasoning off has none to cut"),
])
def test_bad_budgets_are_one_line(parrot_model, fives, tmp_path, args, message):
    proc = run_cli("eval", "--model", parrot_model, "--tasks", "math500", "--backend", "hf", "--data-dir", fives,
                   "--out", tmp_path / "eval", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "eval" / "results.json").exists()
