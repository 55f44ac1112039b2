"""The eval task folder: every task loads through lm-eval, follows the R1 protocol, and scores all k samples."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from distill.eval.math_hooks import add_think_prefill, doc_to_text, process_docs, process_results, protocol_config
from distill.eval.metrics import pass_at_k, pass_at_k_ladder, score_problem, summarize

REPO = Path(__file__).parent.parent
EVAL = REPO / "eval"
THINK = "<think>\nLet me work it out. Maybe \\boxed{7}? No.\n</think>\n\n"


@pytest.fixture(scope="module")
def manager(shared_data):
    from lm_eval.tasks import TaskManager

    # lm-eval's own tasks included, as `lm_eval --include_path eval` sees them
    return TaskManager(include_path=str(EVAL), metadata={"data_dir": str(shared_data)})


@pytest.fixture(scope="module")
def tasks(manager):
    return manager.load(["distill_aime24", "distill_aime25", "distill_math500"])["tasks"]


def test_every_yaml_is_a_task_that_loads(manager, tasks):
    yamls = sorted(p.stem for p in EVAL.glob("*/*.yaml"))
    assert yamls == ["distill_aime24", "distill_aime25", "distill_aime26", "distill_arithmetic", "distill_brumo25",
                     "distill_gpqa_diamond", "distill_hmmt_feb25", "distill_hmmt_feb26", "distill_humaneval",
                     "distill_livecodebench", "distill_math500"]
    assert set(yamls) <= set(manager.all_subtasks)
    # the demo's task loads beside the R1 ones: a --data-dir without its file leaves it on its generated split
    [arithmetic] = manager.load(["distill_arithmetic"])["tasks"].values()
    assert len(arithmetic.eval_docs) == 200 and arithmetic.config.generation_kwargs["max_gen_toks"] == 256
    assert sorted(manager.task_index["distill_aime"].tags) == ["distill_aime24", "distill_aime25"]
    sizes = {name: len(task.eval_docs) for name, task in tasks.items()}
    assert sizes == {"distill_aime24": 30, "distill_aime25": 30, "distill_math500": 500}


def test_tasks_follow_the_r1_protocol(manager, tasks):
    for name, task in tasks.items():
        gen = task.config.generation_kwargs
        assert gen["until"] == [], f"{name}: a stop string besides EOS would cut reasoning short"
        assert (gen["temperature"], gen["top_p"], gen["max_gen_toks"], gen["do_sample"]) == (0.6, 0.95, 32768, True)
        assert task.config.num_fewshot == 0 and not task.config.description
        assert type(task).__name__ == "ReasoningTask"
    assert {n: t.config.repeats for n, t in tasks.items()} == {
        "distill_aime24": 64, "distill_aime25": 64, "distill_math500": 4}
    hub = {n: manager.task_index[n].cfg["dataset_path"] for n in tasks}
    assert hub == {"distill_aime24": "HuggingFaceH4/aime_2024", "distill_aime25": "yentinglin/aime_2025",
                   "distill_math500": "HuggingFaceH4/MATH-500"}


def test_prompt_is_the_sft_user_turn_with_chat_template_and_think_prefill(tasks):
    from transformers import AutoTokenizer

    from distill.core.protocol import user_prompt
    from distill.core.teachers import R1_PROMPT_SUFFIX

    tok = AutoTokenizer.from_pretrained(REPO / "tests" / "assets" / "tiny_tokenizer")
    task = tasks["distill_aime24"]
    doc = task.eval_docs[0]

    def template(messages, add_generation_prompt=True):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    prompt = task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=template)
    user = user_prompt(doc["problem"], R1_PROMPT_SUFFIX)
    assert prompt == f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert "system" not in prompt
    # a template that already opens the think block is not given a second one
    assert add_think_prefill("<|Assistant|><think>\n") == "<|Assistant|><think>\n"
    task.think_prefill = False
    try:
        assert task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=template).endswith("assistant\n")
    finally:
        task.think_prefill = True


def test_docs_are_normalised_from_any_source():
    import datasets

    lm_eval_style = process_docs(datasets.Dataset.from_list([{"Problem": "What is 1+1?", "Answer": 2}]))
    math500_style = process_docs(datasets.Dataset.from_list([{"problem": "p", "answer": "025", "unique_id": "a/1"}]))
    assert [(d["id"], d["problem"], d["answer"]) for d in lm_eval_style] == [("0", "What is 1+1?", "2")]
    assert [(d["id"], d["answer"]) for d in math500_style] == [("a/1", "25")]  # AIME zero padding dropped
    assert doc_to_text(lm_eval_style[0]) == "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}."


def test_metadata_knobs_override_k_budget_sampling_and_data(shared_data):
    base = {"task": "t", "class": object, "repeats": 64, "generation_kwargs": {"temperature": 0.6, "until": []},
            "dataset_path": "hub/x", "test_split": "train"}
    cfg = protocol_config({**base, "metadata": {"samples": 2, "max_tokens": 64, "temperature": 0.0,
                                                "data_dir": str(shared_data), "data_file": "aime25.jsonl"}})
    assert "class" not in cfg and cfg["repeats"] == 2
    assert cfg["generation_kwargs"] == {"temperature": 0.0, "until": [], "max_gen_toks": 64, "do_sample": False}
    assert cfg["dataset_path"] == "json" and cfg["test_split"] == "test"
    assert cfg["dataset_kwargs"]["data_files"]["test"].endswith("aime25.jsonl")
    with pytest.raises(FileNotFoundError, match="nothing.jsonl"):
        protocol_config({**base, "metadata": {"data_dir": str(shared_data), "data_file": "nothing.jsonl"}})


# ---------------------------------------------------------------- scoring: process_results on fixtures


def test_answer_is_taken_after_think_and_the_last_box_wins():
    doc = {"answer": "12"}
    boxed_in_think_only = "<think>\nit is \\boxed{12}\n</think>\n\nI am not sure."
    last_box = THINK + "First \\boxed{11}, on reflection \\boxed{12}."
    assert process_results(doc, [[boxed_in_think_only]])["pass@1"] == 0.0
    assert process_results(doc, [[last_box]])["pass@1"] == 1.0
    assert process_results(doc, [[THINK + "\\boxed{12} then \\boxed{11}"]])["pass@1"] == 0.0


def test_truncated_response_is_wrong_even_with_a_box():
    doc = {"answer": "12"}
    truncated = "<think>\nso the answer is \\boxed{12} and now let me double-check by"
    result = process_results(doc, [[truncated, THINK + "\\boxed{12}"]])
    assert result == {"pass@1": 0.5, "cons@k": 1.0, "pass@k": 1.0, "truncated": 0.5}


def test_all_k_samples_are_scored_not_just_the_first():
    doc = {"answer": "\\frac{1}{2}"}
    responses = [THINK + "\\boxed{3}", THINK + "\\boxed{4}", THINK + "\\boxed{0.5}", THINK + "\\boxed{5}"]
    result = process_results(doc, [responses])
    assert result["pass@1"] == 0.25 and result["pass@k"] == 1.0 and result["truncated"] == 0.0
    score = score_problem(responses, "\\frac{1}{2}")
    assert score.correct == (False, False, True, False) and score.answers[2] == "0.5"


def test_cons_at_k_votes_equivalent_answers_together():
    gold = "\\frac{1}{2}"
    # correct: 0.5, \dfrac12 (2 votes); wrong: 3 (1 vote) -> majority correct
    assert score_problem([THINK + "\\boxed{0.5}", THINK + "\\boxed{3}", THINK + "\\boxed{\\dfrac{1}{2}}"],
                         gold).majority_correct
    # wrong answers 3, 3.0, 3 are one class of 3 votes against 2 correct -> majority wrong
    wrong = [THINK + "\\boxed{3}", THINK + "\\boxed{3.0}", THINK + "\\boxed{0.5}", THINK + "\\boxed{3}",
             THINK + "\\boxed{1/2}"]
    assert not score_problem(wrong, gold).majority_correct
    # a tie goes to the answer seen first
    assert not score_problem([THINK + "\\boxed{3}", THINK + "\\boxed{0.5}"], gold).majority_correct
    assert score_problem([THINK + "\\boxed{0.5}", THINK + "\\boxed{3}"], gold).majority_correct
    # truncated samples cast no vote
    assert score_problem(["<think>\n\\boxed{3}", "<think>\n\\boxed{3}", THINK + "\\boxed{0.5}"], gold).majority_correct


# ---------------------------------------------------------------- the estimators


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 2 / 5),                      # pass@1 is the share correct
    (5, 2, 2, 1 - 3 / 10),                 # 1 - C(3,2)/C(5,2)
    (10, 3, 3, 1 - 35 / 120),              # 1 - C(7,3)/C(10,3)
    (64, 1, 8, 8 / 64),                    # one correct sample: P(it is among the 8 drawn)
    (64, 16, 64, 1.0),                     # k = n: solved at least once
    (5, 2, 4, 1.0),                        # n - c < k: every draw of 4 holds a correct one
    (64, 0, 64, 0.0),
    (4, 4, 1, 1.0),
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_equals_the_combinatorial_formula_everywhere():
    for n in range(1, 20):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_summary_stderr_is_across_problems_of_the_per_problem_mean():
    ok, bad = THINK + "\\boxed{1}", THINK + "\\boxed{2}"
    scores = [score_problem([ok, ok], "1"), score_problem([bad, bad], "1"), score_problem([ok, bad], "1")]
    summary = summarize(scores, tokens=[[10, 20], [30, 40], [50, 32768]], max_tokens=32768)
    assert summary["pass@1"] == pytest.approx(0.5)
    assert summary["pass@1_stderr"] == pytest.approx(0.5 / math.sqrt(3))  # sd of (1, 0, 0.5) / sqrt(3)
    assert summary["cons@k"] == pytest.approx(2 / 3)  # the 1-1 tie of the third goes to its first (correct) answer
    assert (summary["k"], summary["n"], summary["samples"]) == (2, 3, 6)
    assert summary["pass@k"] == pytest.approx(2 / 3)
    assert summary["mean_tokens"] == pytest.approx((10 + 20 + 30 + 40 + 50 + 32768) / 6)
    assert summary["hit_max_tokens"] == pytest.approx(1 / 6)
    assert pass_at_k_ladder(64) == [1, 2, 4, 8, 16, 32, 64] and pass_at_k_ladder(6) == [1, 2, 4, 6]
