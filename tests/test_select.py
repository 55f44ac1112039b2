"""Curate that selects (issue 23): per-prompt pass rates, the budgeted select step, unverified rows kept on purpose,
majority-vote references and the shortest-correct view, on constructed traces with exact counts, plus the demo's
arithmetic teacher through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.core.errors import DistillError
from distill.curate import curate
from distill.curate.config import CurateConfig, SelectParams
from distill.curate.filters import PassRateParams
from distill.curate.selection import choose, histogram, majority_answer, majority_references, pass_rates
from tests.conftest import run_cli

# ---------------------------------------------------------------- constructed traces


def trace(pid: str, s: int, box: str | None, ref: str | None, finish: str = "stop", tokens: int = 100,
          source: str = "a", close: bool = True) -> dict:
    think = f"<think>\nWorking on {pid}, attempt {s}: I check every step twice.\n"
    answer = f"The answer is $\\boxed{{{box}}}$." if box is not None else "I am not sure."
    completion = think + ("</think>\n\n" + answer if close else "")
    return {"id": f"{pid}/{s}", "prompt_id": pid, "problem": f"Problem {pid}", "answer": ref, "source": source,
            "completion": completion, "finish_reason": finish, "prompt_tokens": 10, "completion_tokens": tokens,
            "teacher": "deepseek-r1"}


def rows_a() -> list[dict]:
    """p0: 4/4 correct; p1: 3/4; p2: 0/4; p3: 1/4 (a correct box cut off by the length limit, a chain that never
    closed, a wrong one); p4: no reference (not graded)."""
    rows = [trace("p0", s, "12", "12", tokens=100 + s) for s in range(4)]
    rows += [trace("p1", s, "7" if s < 3 else "8", "7", tokens=200 + 10 * s) for s in range(4)]
    rows += [trace("p2", s, "1", "2", tokens=300) for s in range(4)]
    rows += [trace("p3", 0, "5", "5", tokens=400), trace("p3", 1, "5", "5", finish="length", tokens=400),
             trace("p3", 2, None, "5", finish="length", close=False), trace("p3", 3, "6", "5", tokens=400)]
    rows += [trace("p4", s, "9", None, tokens=50 + s, source="b") for s in range(4)]
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(tmp_path: Path, rows: list[dict], name: str = "out", **kw) -> tuple[dict, list[dict], dict[str, tuple]]:
    """curate the rows; (report, kept rows, {id: (reason, detail)} of the dropped)."""
    src = write(tmp_path / f"{name}.jsonl", rows)
    filters = [f for f in CurateConfig(src="-", out="-").filters if f != "contaminated"]  # offline
    cfg = CurateConfig(src=str(src), out=str(tmp_path / name), num_proc=1, filters=filters, **kw)
    out = curate(cfg)
    report = json.loads((out / "curation_report.json").read_text())
    kept = pa.concat_tables(pq.read_table(p) for p in sorted((out / "data").glob("*.parquet"))).to_pylist()
    dropped = {r["id"]: (r["reason"], r["detail"]) for r in pq.read_table(out / "rejected.parquet").to_pylist()}
    assert len(kept) + len(dropped) == len(rows) == report["counts"]["input_rows"]
    return report, kept, dropped


def ids(rows) -> set[str]:
    return {r["id"] for r in rows}


# ---------------------------------------------------------------- 1. pass_rate


def test_pass_rates_count_every_sample_and_leave_ungraded_prompts_out():
    got = pass_rates([("a", True), ("a", False), ("a", None), ("b", None), ("c", False)])
    assert got == {"a": (1, 3), "c": (0, 1)}
    assert histogram({"a": (1, 4), "c": (0, 4), "d": (4, 4)}) == {"0/4": 1, "1/4": 1, "2/4": 0, "3/4": 0, "4/4": 1}


def test_pass_rate_defaults_drop_nothing_and_the_histogram_counts_every_graded_prompt(tmp_path):
    report, kept, dropped = run(tmp_path, rows_a())
    assert report["counts"]["dropped"]["pass_rate"] == 0
    hist = report["selection"]["pass_rate"]["histogram"]
    assert hist == {"0/4": 1, "1/4": 1, "2/4": 0, "3/4": 1, "4/4": 1}  # p2, p3, p1, p0; p4 has no reference
    assert report["selection"]["pass_rate"]["prompts_graded"] == 4
    # the sample cut off by the length limit is not correct, although its box holds the right answer
    assert dropped["p3/1"][0] == "truncated" and "p3/0" in ids(kept)


def test_pass_rate_max_drops_exactly_the_prompts_always_solved(tmp_path):
    report, kept, dropped = run(tmp_path, rows_a(), pass_rate=PassRateParams(max=0.75))
    by_rate = {i: d for i, (r, d) in dropped.items() if r == "pass_rate"}
    assert set(by_rate) == {f"p0/{s}" for s in range(4)}
    assert all("4/4 = 1.00" in d for d in by_rate.values())
    assert report["counts"]["dropped"]["pass_rate"] == 4 and not any(r["prompt_id"] == "p0" for r in kept)


def test_pass_rate_min_judges_every_sample_whatever_the_other_filters_did(tmp_path):
    # answer filters off: p2's four wrong rows survive to meet pass_rate, whose min drops them (0/4)
    report, kept, dropped = run(tmp_path, rows_a(), pass_rate=PassRateParams(min=0.3), answer_filter=False)
    assert {i for i, (r, _) in dropped.items() if r == "pass_rate"} == {f"p2/{s}" for s in range(4)} | {"p3/0", "p3/3"}
    assert {r["prompt_id"] for r in kept} == {"p0", "p1", "p4"}


# ---------------------------------------------------------------- 2. select


def test_budget_keeps_exactly_n_hardest_and_accounts_the_rest_as_not_selected(tmp_path):
    report, kept, dropped = run(tmp_path, rows_a(), select=SelectParams(budget=4, by="hardest"))
    # survivors: p0 x4 (rate 1), p1 x3 (0.75), p3 x1 (0.25), p4 x4 (no rate: last); the 4 hardest
    assert ids(kept) == {"p3/0", "p1/0", "p1/1", "p1/2"}
    assert report["counts"]["kept"] == 4 and report["counts"]["dropped"]["not_selected"] == 8
    assert sum(r == "not_selected" for r, _ in dropped.values()) == 8
    assert report["selection"]["select"] == {"active": True, "by": "hardest", "budget": 4, "seed": 0,
                                             "not_selected": 8}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`not_selected`" in card and "within a budget" in card and "| 4/4 | 1 | 0 |" in card and "| 1/4 | 1 | 1 |" in card


def test_budget_larger_than_the_survivors_keeps_them_all(tmp_path):
    report, kept, _ = run(tmp_path, rows_a(), select=SelectParams(budget=1000, by="random"))
    assert len(kept) == 12 and report["counts"]["dropped"]["not_selected"] == 0


def test_longest_random_are_exact_and_deterministic(tmp_path):
    _, kept, _ = run(tmp_path, rows_a(), name="long", select=SelectParams(budget=4, by="longest"))
    assert ids(kept) == {"p3/0", "p1/0", "p1/1", "p1/2"}  # mean lengths: p3 410, p1 ~230, p0 ~111, p4 ~62
    _, first, _ = run(tmp_path, rows_a(), name="r1", select=SelectParams(budget=5, by="random", seed=3))
    _, again, _ = run(tmp_path, rows_a(), name="r2", select=SelectParams(budget=5, by="random", seed=3))
    assert len(first) == 5 and ids(first) == ids(again)


def test_balanced_spreads_over_source_and_difficulty():
    table = {"id": [f"{p}/{s}" for p in "abcd" for s in range(5)],
             "prompt_id": [p for p in "abcd" for _ in range(5)],
             "source": ["x"] * 10 + ["y"] * 10, "num_tokens": [10] * 20, "verified": [True] * 20}
    rates = {"a": (0, 4), "b": (4, 4), "c": (1, 4), "d": (4, 4)}  # x: bins 0 and 3; y: bins 1 and 3
    out = choose(list(range(20)), table, rates, SelectParams(budget=8, by="balanced", bins=4))
    chosen = [table["prompt_id"][i] for i in range(20) if i not in {p for p, _ in out}]
    assert sorted(chosen) == list("aabbccdd")  # two of each (source, bin)


def test_shortest_correct_keeps_one_correct_sample_per_prompt(tmp_path):
    report, kept, dropped = run(tmp_path, rows_a(), select=SelectParams(by="shortest_correct"))
    assert ids(kept) == {"p0/0", "p1/0", "p3/0"}  # p4 has nothing verified, p2 nothing that passed
    assert dropped["p0/1"] == ("not_selected", "not the shortest correct sample of its prompt")
    assert "shortest correct sample" in (tmp_path / "out" / "README.md").read_text()


# ---------------------------------------------------------------- 3. answer_filter=off


def test_answer_filter_off_keeps_wrong_and_unverifiable_rows_marked(tmp_path):
    report, kept, dropped = run(tmp_path, rows_a(), answer_filter=False)
    assert report["counts"]["dropped"]["wrong_answer"] == 0 and report["counts"]["dropped"]["no_answer"] == 0
    verified = {r["id"]: r["verified"] for r in kept}
    assert {i for i, v in verified.items() if not v} == {f"p2/{s}" for s in range(4)} | {"p1/3", "p3/3"} | \
        {f"p4/{s}" for s in range(4)}
    assert report["selection"]["verified"]["kept_unverified"] == 10
    assert report["selection"]["verified"]["kept_verified"] == 8
    assert "verified: false" in (tmp_path / "out" / "README.md").read_text()
    _, on, _ = run(tmp_path, rows_a(), name="on")
    assert "verified" not in on[0]  # the default data keeps the SFT_EXAMPLE columns only


# ---------------------------------------------------------------- 4. majority-vote references


def test_majority_answer_votes_equivalent_answers_together_and_a_tie_gives_none():
    assert majority_answer(["1/2", "\\frac{1}{2}", "0.5", "3", "3", None]) == ("1/2", 3)
    assert majority_answer(["1", "2", None]) == (None, 1)
    assert majority_answer([None, None]) == (None, 0)
    refs = majority_references({"q": ["7", "7", "7", "8"], "t": ["1", "1", "2", "2"]})
    assert refs["q"] == {"answer": "7", "votes": 3, "samples": 4, "agreement": 0.75}
    assert refs["t"]["answer"] is None


def test_reference_majority_grades_prompts_without_one(tmp_path):
    rows = [trace("q", s, "7" if s < 3 else "8", None) for s in range(4)]
    rows += [trace("t", s, "1" if s < 2 else "2", None) for s in range(4)]  # a tie: no reference
    rows += [trace("g", s, "4", "5") for s in range(4)]  # has its own reference: not voted on
    report, kept, dropped = run(tmp_path, rows, reference="majority")
    assert dropped["q/3"][0] == "wrong_answer" and {f"g/{s}" for s in range(4)} <= set(dropped)
    assert ids(kept) == {"q/0", "q/1", "q/2"} | {f"t/{s}" for s in range(4)}
    maj = report["selection"]["majority"]
    assert (maj["prompts_voted"], maj["references"], maj["ties"], maj["rows_graded_by_majority"]) == (2, 1, 1, 4)
    assert maj["rows_kept_graded_by_majority"] == 3
    lines = [json.loads(x) for x in (tmp_path / "out" / "majority_references.jsonl").read_text().splitlines()]
    assert lines[0] == {"prompt_id": "q", "answer": "7", "votes": 3, "samples": 4, "agreement": 0.75}
    assert report["selection"]["pass_rate"]["histogram"] == {"0/4": 1, "1/4": 0, "2/4": 0, "3/4": 1, "4/4": 0}
    assert "majority answer" in (tmp_path / "out" / "README.md").read_text()


# ---------------------------------------------------------------- bad input, pass_rate.source, resume


@pytest.mark.parametrize("setting, fix", [
    ("select.by=hardest_first", "choose from hardest"),
    ("select.budget=0", "positive number"),
    ("pass_rate.min=0.8", "min <= max"),
    ("pass_rate.source=tests", "not a distill generate output dir"),
])
def test_bad_input_is_one_line_naming_the_fix_and_writes_nothing(tmp_path, setting, fix):
    src = write(tmp_path / "t.jsonl", rows_a())
    extra = ["--set", "pass_rate.max=0.5"] if "min" in setting else []
    res = run_cli("curate", src, "--out", tmp_path / "out", "--set", setting, *extra)
    assert res.returncode != 0 and fix in res.stderr, res.stderr
    assert len([x for x in res.stderr.strip().splitlines() if x.strip()]) == 1, res.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(DistillError):
        SelectParams(budget=-1)


def test_pass_rate_source_measures_on_a_second_generate_dir(tmp_path):
    from distill.core.manifest import write_manifest

    small = tmp_path / "small"
    (small / "traces").mkdir(parents=True)
    # the small model solves p1 every time and p0 never: the rates come from it, not from the teacher
    rows = [trace("p0", s, "0", "12") for s in range(2)] + [trace("p1", s, "7", "7") for s in range(2)]
    pq.write_table(pa.Table.from_pylist(rows), small / "traces" / "traces-00000.parquet")
    write_manifest(small, stage="generate", status="complete", config={}, inputs=[])
    report, kept, dropped = run(tmp_path, rows_a(), pass_rate=PassRateParams(max=0.5, source=str(small)))
    assert {i for i, (r, _) in dropped.items() if r == "pass_rate"} == {"p1/0", "p1/1", "p1/2"}
    assert report["selection"]["pass_rate"]["histogram"] == {"0/2": 1, "1/2": 0, "2/2": 1}
    assert report["selection"]["pass_rate"]["measured_on"] == str(small)


def test_a_killed_run_resumes_to_the_same_selection(tmp_path):
    src = write(tmp_path / "t.jsonl", rows_a())
    args = ["curate", src, "--set", "contaminated.benchmarks=[]", "--num-proc", "1", "--set", "unit_rows=4",
            "--set", "reference=majority", "--set", "select.budget=3", "--set", "pass_rate.max=0.9"]  # p4: majority 4/4, dropped
    killed = run_cli(*args, "--out", tmp_path / "a", env={"_DISTILL_TEST_KILL_AFTER_UNITS": "2"})
    assert killed.returncode != 0 and not (tmp_path / "a" / "curation_report.json").exists()
    resumed = run_cli(*args, "--out", tmp_path / "a")
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-2000:]
    assert run_cli(*args, "--out", tmp_path / "b").returncode == 0
    data = [pq.read_table(tmp_path / d / "data").sort_by("id").to_pylist() for d in "ab"]
    assert data[0] == data[1] and len(data[0]) == 3


# ---------------------------------------------------------------- "done when": the demo's arithmetic teacher, k = 4


@pytest.fixture(scope="module")
def arithmetic(tmp_path_factory):
    from distill.tasks.arithmetic import SumTask

    tmp = tmp_path_factory.mktemp("arith")
    prompts = write(tmp / "p.jsonl", SumTask().prompts("train", 200))
    res = run_cli("generate", "--prompts", prompts, "--teacher", "arithmetic", "-k", "4",
                  "--model", "arithmetic?flaw_rate=0.2", "--out", tmp / "gen")
    assert res.returncode == 0, res.stderr[-2000:]
    return tmp


def cli_curate(tmp: Path, name: str, *sets: str) -> tuple[list[dict], list[dict]]:
    extra = [x for s in sets for x in ("--set", s)]
    res = run_cli("curate", tmp / "gen", "--out", tmp / name, "--set", "contaminated.benchmarks=[]", "--num-proc",
                  "1", *extra)
    assert res.returncode == 0, res.stderr[-2000:]
    kept = pq.read_table(tmp / name / "data").to_pylist()
    return kept, pq.read_table(tmp / name / "rejected.parquet").to_pylist()


def test_arithmetic_pass_rate_max_drops_exactly_the_prompts_all_four_samples_solved(arithmetic):
    from distill.core.shards import read_shards
    from distill.eval.metrics import score_problem

    traces = read_shards(arithmetic / "gen" / "traces").to_pylist()
    by_prompt: dict[str, list[dict]] = {}
    for t in traces:
        by_prompt.setdefault(t["prompt_id"], []).append(t)
    # scored by eval's own pass@1 scorer, independently of curate
    solved = {p for p, ts in by_prompt.items()
              if len(ts) == 4 and all(score_problem([t["completion"] for t in ts], ts[0]["answer"]).correct)}
    assert 0 < len(solved) < len(by_prompt)
    base_kept, base_rejected = cli_curate(arithmetic, "base")
    # pass_rate runs before the other set filters: it meets every prompt with a row left by the row filters
    reached = {r["prompt_id"] for r in base_kept} | {r["prompt_id"] for r in base_rejected
                                                   if r["reason"] in ("duplicate", "per_prompt_cap")}
    kept, rejected = cli_curate(arithmetic, "max075", "pass_rate.max=0.75")
    assert {r["prompt_id"] for r in rejected if r["reason"] == "pass_rate"} == solved & reached
    assert not {r["prompt_id"] for r in kept} & solved
    report = json.loads((arithmetic / "max075" / "curation_report.json").read_text())
    assert report["selection"]["pass_rate"]["histogram"]["4/4"] == len(solved)
    assert "| 4/4 |" in (arithmetic / "max075" / "README.md").read_text()


def test_arithmetic_budget_100_hardest_keeps_exactly_100(arithmetic):
    kept, rejected = cli_curate(arithmetic, "hard100", "select.budget=100", "select.by=hardest")
    assert len(kept) == 100 and len(kept) + len(rejected) == 800
    report = json.loads((arithmetic / "hard100" / "curation_report.json").read_text())
    assert report["counts"]["kept"] == 100 and report["counts"]["dropped"]["not_selected"] > 0
    assert sum(r["reason"] == "not_selected" for r in rejected) == report["counts"]["dropped"]["not_selected"]
    manifest = json.loads((arithmetic / "hard100" / "manifest.json").read_text())
    assert manifest["config"]["select"]["budget"] == 100 and manifest["counts"]["kept"] == 100
    assert manifest["selection"]["select"]["not_selected"] == report["counts"]["dropped"]["not_selected"]


def test_answer_filter_off_as_the_user_types_it(tmp_path):
    src = write(tmp_path / "t.jsonl", rows_a())
    res = run_cli("curate", src, "--out", tmp_path / "out", "--set", "contaminated.benchmarks=[]", "--num-proc", "1",
                  "--set", "answer_filter=off")  # YAML reads off as false
    assert res.returncode == 0, res.stderr[-2000:]
    kept = pq.read_table(tmp_path / "out" / "data").to_pylist()
    assert len(kept) == 18 and sum(not r["verified"] for r in kept) == 10
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["config"]["answer_filter"] is False
