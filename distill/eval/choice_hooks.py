"""The lm-eval side of multiple-choice tasks under the R1 protocol (GPQA Diamond): choices shuffled per question
with a recorded seed, the answer a letter, graded on all k samples.

    # eval/gpqa/_gpqa_yaml
    class: !function utils.ChoiceTask          # the R1 protocol (math_hooks.ReasoningTask) + the shuffle seed
    process_docs: !function utils.process_docs
    doc_to_text: !function utils.doc_to_text
    process_results: !function utils.process_results

Reads the hub's columns (`Idavidrein/gpqa`, or `--data-dir DIR/gpqa_diamond.jsonl` in the same layout):
{"Question": "...", "Correct Answer": "...", "Incorrect Answer 1": "...", "Incorrect Answer 2": "...",
 "Incorrect Answer 3": "...", "Record ID": "rec..."}. A doc after `process_docs`:
{"id": "rec...", "problem": "...", "choices": ["...", "...", "...", "..."], "answer": "C", "shuffle_seed": 0}.

Why shuffle: in the hub copy the correct answer is always the first column, so a fixed order would put it at A
every time. Each question is shuffled by its own generator, seeded from (shuffle_seed, the question text), so the
order depends neither on the row order nor on which other questions are in the file, and anyone holding the seed
(results.json records it) gets the same letters back with `shuffle_choices`.

Which answers count (decided here, documented in eval/README.md): after `</think>` (reasoning on; the whole
response when off), the last `\\boxed{}` whose content is one letter A-D, optionally wrapped: `\\boxed{C}`,
`\\boxed{(C)}`, `\\boxed{\\text{C}}`, `\\boxed{C) 42}`; failing that, the last `Answer: C` / `answer is (C)`
(the simple-evals format the R1 paper's GPQA prompts asked for). A box holding a value instead of a letter, or
a bare letter in the prose, is no answer: the prompt asks for the letter, and "A" is also an English word.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from distill.core.errors import DistillError
from distill.core.protocol import THINK_CLOSE, user_prompt
from distill.eval.math_hooks import ReasoningTask
from distill.eval.metrics import ProblemScore
from distill.grading.answers import extract_boxed

LETTERS = "ABCD"
COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
# R1's math instruction with the letter asked for: the student was trained to end on a \boxed{} answer
CHOICE_PROMPT_SUFFIX = ("Please reason step by step, and put the letter of the correct choice (A, B, C or D) "
                        "within \\boxed{}.")
CHOICE_USER_PROMPT = "{question}\n\nA) {choice A}\nB) {choice B}\nC) {choice C}\nD) {choice D}\n" + CHOICE_PROMPT_SUFFIX
DEFAULT_SHUFFLE_SEED = 0


# ---------------------------------------------------------------- docs and prompts


def shuffle_choices(question: str, correct: str, incorrect: Sequence[str], seed: int) -> tuple[list[str], str]:
    """(the four choices in their shown order, the letter of the correct one) for one question and seed."""
    choices = [correct, *incorrect]
    # a str seed is hashed with sha512 by `random`, so the order is the same on every machine and Python run
    random.Random(f"{seed}\n{question}").shuffle(choices)
    return choices, LETTERS[choices.index(correct)]


def process_docs(dataset, seed: int = DEFAULT_SHUFFLE_SEED):
    """The hub's GPQA columns -> id, problem, choices (shuffled), answer (a letter), shuffle_seed."""
    import datasets

    missing = [c for c in COLUMNS if c not in dataset.column_names]
    if missing:
        raise DistillError(f"the GPQA data has no '{missing[0]}' column (it has: {', '.join(dataset.column_names)}); "
                           f"--data-dir's gpqa_diamond.jsonl needs the hub's columns {', '.join(COLUMNS)}")
    rows = []
    for i, row in enumerate(dataset):
        question = str(row["Question"]).strip()
        wrong = [str(row[f"Incorrect Answer {j}"]).strip() for j in (1, 2, 3)]
        choices, letter = shuffle_choices(question, str(row["Correct Answer"]).strip(), wrong, seed)
        doc_id = row.get("Record ID") or row.get("id") or str(i)
        rows.append({"id": str(doc_id), "problem": question, "choices": choices, "answer": letter,
                     "shuffle_seed": seed})
    return datasets.Dataset.from_list(rows)


def doc_to_text(doc: dict[str, Any]) -> str:
    """The question, the choices as `A) ...` lines (simple-evals' layout), then the boxed-letter instruction."""
    options = "\n".join(f"{letter}) {text}" for letter, text in zip(LETTERS, doc["choices"], strict=True))
    return user_prompt(f"{doc['problem']}\n\n{options}", CHOICE_PROMPT_SUFFIX)


# ---------------------------------------------------------------- scoring

_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_BOXED_LETTER = re.compile(r"^\(?\s*([A-D])\s*(?:\)|[.:])?(?:\s+.*)?$", re.S)
_ANSWER_LINE = re.compile(r"(?i:answer)\s*(?:(?i:is)\s*)?[:：]?\s*\(?\s*([A-D])\b")  # the letter in capitals


def extract_letter(response: str, reasoning: bool = True) -> str | None:
    """The chosen letter (see the module docstring for the accepted forms), or None."""
    if reasoning:
        if THINK_CLOSE not in response:
            return None  # cut off before the answer: wrong, as for the math tasks
        response = response.rsplit(THINK_CLOSE, 1)[1]
    boxed = extract_boxed(response)
    if boxed is not None:
        inner = _WRAPPERS.sub(r"\1", boxed).strip().strip("$").strip()
        match = _BOXED_LETTER.match(inner)
        if match:
            return match.group(1)
    lines = _ANSWER_LINE.findall(response.replace("*", ""))
    return lines[-1] if lines else None


def score_choices(responses: Sequence[str], letter: str, reasoning: bool = True) -> ProblemScore:
    """Verdicts on one question's k responses; cons@k is a plain vote over the letters (ties: first seen)."""
    answers = tuple(extract_letter(r, reasoning) for r in responses)
    correct = tuple(a == letter for a in answers)
    truncated = tuple(THINK_CLOSE not in r for r in responses) if reasoning else (False,) * len(responses)
    votes = Counter(a for a in answers if a is not None)
    # Counter keeps first-seen order among equal counts, so most_common breaks ties toward the earlier answer
    majority = votes.most_common(1)[0][0] == letter if votes else False
    return ProblemScore(answers, correct, truncated, majority)


def keep_all(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    """A pass-through lm-eval filter, so that all k repeats reach process_results (lm-eval's default keeps one);
    letters need no grader prefetch."""
    return list(resps)


def process_results(doc: dict[str, Any], results: list[Any], reasoning: bool = True) -> dict[str, float]:
    responses = results[0] if results and isinstance(results[0], (list, tuple)) else results
    score = score_choices(responses, doc["answer"], reasoning)
    metrics = {"pass@1": score.pass_at_1, "cons@k": float(score.majority_correct),
               "pass@k": score.pass_at(score.samples)}
    return {**metrics, "truncated": sum(score.truncated) / score.samples} if reasoning else metrics


# ---------------------------------------------------------------- the task class


class ChoiceTask(ReasoningTask):
    """ReasoningTask with the shuffle seed of its metadata (`shuffle_seed`, default 0) bound into process_docs,
    and the letters graded in this run's reasoning mode."""

    def __init__(self, data_dir=None, cache_dir=None, download_mode=None, config: dict | None = None) -> None:
        config = dict(config or {})
        seed = int((config.get("metadata") or {}).get("shuffle_seed", DEFAULT_SHUFFLE_SEED))
        if config.get("process_docs") is process_docs:
            config["process_docs"] = lambda dataset: process_docs(dataset, seed)
        self.shuffle_seed = seed
        super().__init__(data_dir, cache_dir, download_mode, config=config)

    def process_results(self, doc, results):
        return process_results(doc, results, reasoning=self.reasoning == "on")
