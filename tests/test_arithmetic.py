"""The demo's task pack and its program teacher: disjoint splits, correct traces, flaws at their set rates, and
`distill generate --teacher arithmetic` through the real CLI."""

from __future__ import annotations

import json
import re
from itertools import pairwise

import pytest
from conftest import run_cli

from distill.core.errors import DistillError
from distill.core.teachers import R1_PROMPT_SUFFIX
from distill.generate.backends import BackendOptions, Request, open_backend
from distill.generate.backends.arithmetic import DEFAULT_FLAW_RATE, FLAWS, LOOP_SENTENCE, parse_flaw_rates
from distill.tasks.arithmetic import SumTask, parse_problem, solve, split_of

BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def boxed_after_think(completion: str) -> str | None:
    if "</think>" not in completion:
        return None
    found = BOXED.findall(completion.split("</think>", 1)[1])
    return found[-1] if found else None


def requests_for(rows, max_tokens=1024, seed_base=0):
    return [
        Request(f"{r['id']}/0", [{"role": "user", "content": f"{r['problem']}\n{R1_PROMPT_SUFFIX}"}], max_tokens,
                0.6, 0.95, seed_base + i)
        for i, r in enumerate(rows)
    ]


# ---------------------------------------------------------------- the task pack


def test_train_and_test_problems_are_disjoint_even_up_to_reordering():
    task = SumTask()
    train, test = task.prompts("train", 3000), task.prompts("test", 400)
    as_multiset = lambda rows: {tuple(sorted(parse_problem(r["problem"]))) for r in rows}  # noqa: E731
    assert not as_multiset(train) & as_multiset(test)
    assert len({r["id"] for r in train + test}) == 3400
    assert len({r["problem"] for r in train}) == 3000
    assert all(split_of(parse_problem(r["problem"])) == "test" for r in test)
    # a few percent of the problem space is held out, whatever the seed
    assert {r["problem"] for r in task.prompts("test", 50, seed=1)} != {r["problem"] for r in test[:50]}


def test_prompts_are_reproducible_and_answers_are_the_sums():
    task = SumTask(terms=8, digits=2)
    rows = task.prompts("train", 200, seed=7)
    assert rows == task.prompts("train", 200, seed=7)
    for row in rows:
        terms = parse_problem(row["problem"])
        assert len(terms) == 8 and all(10 <= t <= 99 for t in terms)
        assert row["answer"] == str(sum(terms))
        assert set(row) == {"id", "problem", "answer", "source"}


def test_solution_totals_are_right_and_padded_to_a_fixed_width():
    think, answer = solve([3, 8, 5, 9, 2, 7, 4, 6, 1, 8])
    assert think == "running totals: 03, 11, 16, 25, 27, 34, 38, 44, 45, 53" and answer == "53"
    assert solve([37, 82, 15])[0] == "running totals: 037, 119, 134"


def test_each_total_sits_as_far_from_the_next_as_the_terms_do_in_the_prompt():
    """The layout invariant the demo relies on (see distill/tasks/arithmetic.py): in tokens, consecutive running
    totals are exactly as far apart as consecutive prompt terms, for every problem of the task."""
    from distill.tasks.student import build_tokenizer

    tok = build_tokenizer()
    for row in SumTask().prompts("train", 20) + SumTask(8, 2).prompts("train", 20):
        prompt_tokens = tok.encode(row["problem"]).tokens
        trace_tokens = tok.encode(solve(parse_problem(row["problem"])).think).tokens
        plus = [i for i, t in enumerate(prompt_tokens) if t == "+"]
        commas = [i for i, t in enumerate(trace_tokens) if t == ","]
        term_gaps = {b - a for a, b in pairwise(plus)}
        assert len(term_gaps) == 1 and term_gaps == {b - a for a, b in pairwise(commas)}


def test_task_sizes_that_break_the_layout_are_refused():
    with pytest.raises(DistillError, match="at most 11 terms"):
        SumTask(terms=12, digits=1)
    with pytest.raises(DistillError, match="at least 2 terms"):
        SumTask(terms=1)


# ---------------------------------------------------------------- the teacher backend


def test_flaw_rates_come_from_the_model_string():
    assert parse_flaw_rates("arithmetic") == dict.fromkeys(FLAWS, DEFAULT_FLAW_RATE)
    assert parse_flaw_rates("arithmetic?flaw_rate=0&truncated=0.5")["truncated"] == 0.5
    assert parse_flaw_rates("arithmetic?flaw_rate=0")["wrong_answer"] == 0
    for bad, why in (("arithmetic?typo=0.1", "unknown option 'typo'"), ("arithmetic?truncated=x", "not a number"),
                     ("arithmetic?truncated=2", r"not a rate"), ("arithmetic?flaw_rate=0.3", "add up to 1.2")):
        with pytest.raises(DistillError, match=why):
            parse_flaw_rates(bad)


def classify(completion: str, finish: str, reference: str) -> str:
    """Which flaw (if any) a teacher completion shows, judged from the text alone."""
    if finish == "length" or "</think>" not in completion:
        return "truncated"
    if completion.count(LOOP_SENTENCE) >= 10:
        return "repetition"
    if re.search(r"[\u4e00-\u9fff]", completion):
        return "mixed_language"
    return "correct" if boxed_after_think(completion) == reference else "wrong_answer"


def test_teacher_writes_correct_traces_and_each_flaw_at_its_rate():
    rows = SumTask().prompts("train", 3000)
    teacher = open_backend("arithmetic", BackendOptions(model="arithmetic?wrong_answer=0.1&repetition=0.02"))
    kinds = {}
    for row, done in zip(rows, teacher.generate(requests_for(rows)), strict=True):
        kind = classify(done.text, done.finish_reason, row["answer"])
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "correct":
            assert done.text.startswith("<think>\nrunning totals: ") and done.finish_reason == "stop"
            assert done.text.endswith(f"\\boxed{{{row['answer']}}}.")
        assert done.completion_tokens > 0 and done.prompt_tokens > 0 and done.model.startswith("arithmetic")
    n = len(rows)
    for flaw, rate in {"wrong_answer": 0.1, "truncated": 0.04, "repetition": 0.02, "mixed_language": 0.04}.items():
        sigma = (n * rate * (1 - rate)) ** 0.5
        assert abs(kinds.get(flaw, 0) - n * rate) < 4 * sigma, (flaw, kinds)
    assert kinds["correct"] == n - sum(kinds.get(f, 0) for f in FLAWS)


def test_teacher_is_deterministic_given_the_seed():
    rows = SumTask().prompts("train", 200)
    first = [c.text for c in open_backend("arithmetic", BackendOptions(model="arithmetic")).generate(requests_for(rows))]
    again = [c.text for c in open_backend("arithmetic", BackendOptions(model="arithmetic")).generate(requests_for(rows))]
    other = [c.text for c in open_backend("arithmetic", BackendOptions(model="arithmetic")).generate(
        requests_for(rows, seed_base=10_000))]
    assert first == again and first != other


def test_teacher_stops_at_max_tokens_and_refuses_other_problems():
    rows = SumTask().prompts("train", 3)
    teacher = open_backend("arithmetic", BackendOptions(model="arithmetic?flaw_rate=0"))
    cut = list(teacher.generate(requests_for(rows, max_tokens=12)))
    assert all(c.finish_reason == "length" and c.completion_tokens == 12 and "</think>" not in c.text for c in cut)
    other = Request("x/0", [{"role": "user", "content": "Prove that sqrt(2) is irrational."}], 64, 0.6, 0.95, 0)
    [done] = teacher.generate([other])
    assert done.finish_reason == "error" and done.text == "" and "only solves sums" in done.error


# ---------------------------------------------------------------- through the real CLI


def test_generate_with_the_arithmetic_teacher_writes_the_traces(tmp_path):
    from distill.core.shards import read_shards

    rows = SumTask().prompts("train", 300)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "gen"
    result = run_cli("generate", "--teacher", "arithmetic", "--prompts", prompts, "--out", out, "--set", "shard_rows=128")
    assert result.returncode == 0, result.stderr
    traces = sorted(read_shards(out / "traces", "traces").to_pylist(), key=lambda r: r["id"])
    assert len(list((out / "traces").glob("traces-*.parquet"))) == 3
    assert [t["id"] for t in traces] == [f"{r['id']}/0" for r in rows]
    by_id = {r["id"]: r for r in rows}
    for trace in traces:
        prompt = by_id[trace["prompt_id"]]
        assert (trace["teacher"], trace["model"]) == ("arithmetic", "arithmetic")
        assert trace["problem"] == prompt["problem"] and trace["answer"] == prompt["answer"]
        assert trace["messages"] == [{"role": "user", "content": f"{prompt['problem']}\n{R1_PROMPT_SUFFIX}"}]
        kind = classify(trace["completion"], trace["finish_reason"], prompt["answer"])
        assert (kind == "truncated") == (trace["finish_reason"] == "length")
    kinds = [classify(t["completion"], t["finish_reason"], t["answer"]) for t in traces]
    assert kinds.count("correct") > 0.75 * len(traces) and len(set(kinds)) == 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["rows"] == 300
    # a re-run finds every row written and adds nothing
    again = run_cli("generate", "--teacher", "arithmetic", "--prompts", prompts, "--out", out)
    assert again.returncode == 0 and "nothing to do" in again.stderr
