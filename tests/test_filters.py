"""Each curate filter drops its own bad rows and no good ones; thresholds hold on real teacher traces;
decontamination catches copies and spares boilerplate; near-duplicates and the per-prompt cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.curate import worker
from distill.curate.config import CurateConfig
from distill.curate.decontaminate import NgramIndex, load_eval_sets
from distill.curate.dedup import near_duplicate_prompts, over_cap, prompt_signature
from distill.curate.filters import (
    FILTERS,
    Candidate,
    MixedLanguageParams,
    RepetitionParams,
    WrongAnswerParams,
    mixed_language,
    repetition,
)
from distill.grading.answers import normalize_tags

ASSETS = Path(__file__).parent / "assets"
ROW_FILTERS = [name for name, f in FILTERS.items() if f.kind == "row" and f.check is not None]


@pytest.fixture(scope="module")
def tiny():
    """(trace, candidate) for every row of the hand-made fixture, built as the curate worker builds them."""
    # 1 s per symbolic check: the row whose answer hangs sympy costs that, not the 5 s default
    cfg = CurateConfig(src="-", out="-", filters=[f for f in FILTERS if f != "contaminated"],
                       wrong_answer=WrongAnswerParams(timeout=1.0))
    spec = worker.WorkerSpec.build(cfg)
    worker._init(spec)
    rows = [json.loads(line) for line in (ASSETS / "traces_tiny.jsonl").read_text().splitlines()]
    return cfg, [(row, worker.make_candidate(row, spec)) for row in rows]


@pytest.mark.parametrize("name", ROW_FILTERS)
def test_each_filter_rejects_its_rows_and_keeps_the_good_ones(name, tiny):
    cfg, rows = tiny
    params = cfg.params(name)
    for row, cand in rows:
        why = FILTERS[name].check(cand, params)
        if row["expect"] == name:
            assert why, f"{name} kept {row['case']!r}"
        elif row["expect"] == "kept":
            assert why is None, f"{name} dropped good row {row['case']!r}: {why}"


def test_the_chain_gives_every_row_its_own_reason(tiny):
    cfg, rows = tiny
    chain = [f for f in cfg.filters if FILTERS[f].kind == "row"]
    for row, cand in rows:
        reason = next((n for n in chain if FILTERS[n].check(cand, cfg.params(n))), "kept")
        expected = row["expect"] if row["expect"] in chain else "kept"  # set filters act later
        assert reason == expected, row["case"]


def test_every_filter_has_a_config_section_and_a_doc():
    fields = CurateConfig.__dataclass_fields__
    for name, f in FILTERS.items():
        assert name in fields and f.doc


def test_sky_t1_and_non_reasoning_rows_become_the_sft_form(tiny):
    _, rows = tiny
    by_case = {row["case"]: cand for row, cand in rows}
    sky = by_case["Sky-T1 tags"]
    assert sky.is_reasoning and sky.assistant.startswith("<think>\n20+22 is 42.")
    assert sky.assistant.endswith("</think>\n\nThe answer is \\(\\boxed{42}\\).")
    v3 = by_case["non-reasoning (deepseek-v3, no reference)"]
    assert not v3.is_reasoning and v3.assistant == "The capital of France is Paris."
    assert sky.user == "Compute $20+22$.\nPlease reason step by step, and put your final answer within \\boxed{}."


def candidate(completion: str, user: str = "Compute it.") -> Candidate:
    completion = normalize_tags(completion)
    from distill.grading.answers import split_think

    reasoning, answer = split_think(completion)
    return Candidate(id="x/0", prompt_id="x", source=None, teacher="t", finish_reason="stop", problem=user,
                     reference=None, user=user, completion=completion, is_reasoning=True, reasoning=reasoning,
                     answer_text=answer)


def test_mixed_language_allows_the_prompt_s_own_script():
    chinese = candidate("<think>\n所以答案是十二。12\n</think>\n\n\\boxed{12}", user="计算 6+6。")
    assert mixed_language(chinese, MixedLanguageParams()) is None
    switched = candidate("<think>\nSo the total is 12, 所以答案是十二.\n</think>\n\n\\boxed{12}")
    assert "han" in mixed_language(switched, MixedLanguageParams())
    greek = candidate("<think>\nLet θ = π/3, so sin θ = √3/2 ≤ 1.\n</think>\n\n\\boxed{1}")
    assert mixed_language(greek, MixedLanguageParams()) is None  # math notation is not a language switch


@pytest.fixture(scope="module")
def real_traces(shared_data):
    rows = [json.loads(line) for line in (shared_data / "real_traces" / "skythought_math_traces.jsonl").open()]
    return [(r, candidate(r["completion"], r["problem"])) for r in rows]


def test_repetition_thresholds_on_real_traces(real_traces):
    """Calibration the defaults rest on: no finished real trace is a loop; many unfinished ones are
    (they ran into the length limit repeating themselves)."""
    finished = [c for r, c in real_traces if "<|end_of_solution|>" in r["completion"]]
    unfinished = [c for r, c in real_traces if "<|end_of_solution|>" not in r["completion"]]
    assert len(finished) == 276
    assert [c.id for c in finished if repetition(c, RepetitionParams())] == []
    assert sum(bool(repetition(c, RepetitionParams())) for c in unfinished) >= 50


def test_language_mixing_in_real_traces(real_traces):
    """real_traces holds two completions with Chinese: a single word (相遇) in English reasoning, and a
    reflection model that drifts into Chinese; R1's rule drops both."""
    flagged = {r["id"] for r, c in real_traces if c.reasoning and mixed_language(c, MixedLanguageParams())}
    assert flagged == {"skythought:Sky-T1-math-corrupt-0.7-32B:amc23:0",
                       "skythought:Sky-T1-math-reflection-1.0-32B:aime24:4"}


# ---------------------------------------------------------------- decontamination, duplicates, cap


@pytest.fixture(scope="module")
def eval_index(shared_data):
    return NgramIndex(load_eval_sets(["aime24", "aime25", "math500"], shared_data), n=8)


def test_a_verbatim_eval_problem_is_caught(eval_index, shared_data):
    aime = [json.loads(line)["problem"] for line in (shared_data / "aime24.jsonl").open()]
    hits = eval_index.match(f"Solve this carefully.\n\n{aime[4]}\nPlease reason step by step.", min_overlap=0.25)
    assert ("aime24", 4, 1.0) in hits
    shorter = eval_index.match(aime[4].replace(",", " ,").upper(), min_overlap=0.25)  # case, spacing, punctuation
    assert ("aime24", 4, 1.0) in shorter


def test_decontamination_spares_unrelated_and_boilerplate_prompts(eval_index, shared_data):
    """GSM8K shares nothing with AIME/MATH-500. MATH train shares phrasing ('express your answer as a common
    fraction') with MATH-500 though it holds none of its problems: any-8-gram flags >10% of it, the default
    25% overlap rule a few percent (near-copies such as the same diagram with another question)."""
    gsm = [json.loads(line)["problem"] for line in (shared_data / "gsm8k_train_sample.jsonl").open()]
    math_train = [json.loads(line)["problem"] for line in (shared_data / "math_train_sample.jsonl").open()]
    assert sum(bool(eval_index.match(p, 0.25)) for p in gsm) == 0
    any_gram = sum(bool(eval_index.match(p, 0.0)) for p in math_train)
    default = sum(bool(eval_index.match(p, 0.25)) for p in math_train)
    assert any_gram > 0.1 * len(math_train)
    assert default < 0.03 * len(math_train)


def test_user_files_join_the_eval_sets(tmp_path):
    own = tmp_path / "holdout.jsonl"
    own.write_text(json.dumps({"question": "Find the number of lattice points strictly inside the ellipse x^2/49 "
                                           "+ y^2/16 = 1 on the plane"}) + "\n")
    index = NgramIndex(load_eval_sets([], None, [own]), n=8)
    assert index.match("Q: find the number of lattice points strictly inside the ellipse x^2/49 + y^2/16 = 1 on the "
                       "plane, please.")[0][:2] == ("holdout", 0)


def test_near_duplicate_prompts_keep_the_first():
    sigs = [("a", prompt_signature("What is $2+3$? Give the answer as an integer.")),
            ("b", prompt_signature("What is  $2 + 3$ ?  Give the answer as an integer")),
            ("c", prompt_signature("What is $2+4$? Give the answer as a fraction in lowest terms."))]
    assert near_duplicate_prompts(sigs, threshold=0.9) == {"b": "a"}


def test_per_prompt_cap_is_deterministic_and_order_free():
    rows = [("p/0", "p", 50), ("p/1", "p", 10), ("p/2", "p", 30), ("q/0", "q", 5)]
    assert over_cap(rows, 2, "shortest", 0) == [0]
    shuffled = [rows[2], rows[3], rows[0], rows[1]]
    picked = {rows[i][0] for i in over_cap(rows, 1, "random", 7)}
    assert picked == {shuffled[i][0] for i in over_cap(shuffled, 1, "random", 7)}


@pytest.mark.parametrize(
    "completion, teacher, expected",
    [
        ("<think>\nfine\n</think>\n\n$\\boxed{5}$", "unknown", None),
        ("<|begin_of_thought|>\nstill thinking, 2 plus", "unknown", "no </think> (cut off in the reasoning)"),
        ("<think>\nall thought out\n</think>\n\n", "unknown", "nothing after </think>"),
        ("", "deepseek-v3", "empty"),
        ("The answer is 5.", "deepseek-v3", None),
    ],
)
def test_truncated_decides_from_the_text_when_the_finish_reason_is_unknown(tiny, completion, teacher, expected):
    """Published sets rarely record why generation stopped (finish_reason `unknown`, distill/curate/formats.py):
    the text decides, and the reason says that it did."""
    spec = worker.WorkerSpec.build(tiny[0])
    row = {"id": "p/0", "prompt_id": "p", "problem": "What is 2+3?", "completion": completion,
           "finish_reason": "unknown", "teacher": teacher}
    why = FILTERS["truncated"].check(worker.make_candidate(row, spec), None)
    assert why == (None if expected is None else f"finish_reason unknown; from the text: {expected}")
    assert FILTERS["truncated"].check(worker.make_candidate({**row, "finish_reason": "length"}, spec), None) == \
        "finish_reason=length"
