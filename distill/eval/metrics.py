"""Scoring k sampled responses per problem under the R1 protocol, and the metrics `distill eval` reports.

    score = score_problem(("...</think>\n\n\\boxed{204}", "...no think end"), "204")
    score.correct, score.truncated            # (True, False), (False, True)
    summarize([score, ...], tokens=[[812, 32768], ...])
    # {"pass@1": 0.5, "pass@1_stderr": ..., "cons@k": ..., "pass@k": ..., "k": 2, "n": 1, "truncated": 0.5, ...}

Grading is the project's one grader, `distill.grading.answers` (also used by curate). A reasoning model's answer is the
last \\boxed{} after `</think>`; a response without `</think>` (cut off by the token limit) has no answer and is
wrong. A model evaluated with `reasoning=False` (no think block: a base or instruct model before distillation)
is graded on the last \\boxed{} of its whole response, and counts as truncated only when it used the whole token
budget (`with_lengths`), which only the backend knows.
Metrics, all means over problems:
- pass@1: per problem the share of its k samples that are correct, averaged over problems; its standard error
  is the sample standard deviation of those per-problem shares over sqrt(number of problems), i.e. it measures
  how much the score would move with another draw of problems of the same kind (and of samples).
- cons@k: majority vote over the k extracted answers, where answers that the grader finds equivalent
  ("0.5", "\\frac12") vote together; ties go to the answer seen first.
- pass@k: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k) for n samples of which c
  are correct; at k = n it is the share of problems solved at least once. `pass_at_k_curve` gives k = 1, 2, 4...
- truncated: share of samples without `</think>` (reasoning off: that hit the token limit); mean_tokens: mean
  response length in tokens.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from distill.core.protocol import THINK_CLOSE
from distill.eval.variance import sampling_noise
from distill.grading.answers import equivalent_many, extract_answer, extract_boxed, is_equivalent

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class ProblemScore:
    """The verdicts on one problem's k responses."""

    answers: tuple[str | None, ...]  # extracted answer per response (None: truncated or no \boxed{})
    correct: tuple[bool, ...]
    truncated: tuple[bool, ...]
    majority_correct: bool | None  # cons@k for this problem (None: no vote, e.g. programs of a code task)

    @property
    def samples(self) -> int:
        return len(self.correct)

    @property
    def num_correct(self) -> int:
        return sum(self.correct)

    @property
    def pass_at_1(self) -> float:
        return self.num_correct / self.samples if self.samples else 0.0

    def pass_at(self, k: int) -> float:
        return pass_at_k(self.samples, self.num_correct, k)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021, "Evaluating Large Language Models
    Trained on Code", eq. 1), as the numerically stable product 1 - prod_{i=n-c+1}^{n} (1 - k/i)."""
    assert 0 <= c <= n and 1 <= k <= n, f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}"
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def score_problem(responses: Sequence[str], reference: str, timeout: float = DEFAULT_TIMEOUT,
                  reasoning: bool = True) -> ProblemScore:
    """Grade every response of one problem against its reference answer (all k of them, not the first).

    Cached on the exact responses: lm-eval's `process_results` and `distill eval`'s sample writer score the
    same lists, and the second call must not pay for the grader again."""
    return _score_cached(tuple(responses), str(reference), float(timeout), bool(reasoning))


def with_lengths(score: ProblemScore, lengths: Sequence[int], max_tokens: int) -> ProblemScore:
    """A non-reasoning score with `truncated` read from the generated token counts: cut off = used the budget."""
    return dataclasses.replace(score, truncated=tuple(n >= max_tokens for n in lengths))


def answer_of(response: str, reasoning: bool = True) -> str | None:
    """The graded answer: after `</think>` for a reasoning model, else the last box anywhere in the response."""
    return extract_answer(response) if reasoning else extract_boxed(response)


def prefetch(problems: Sequence[tuple[Sequence[str], str]], timeout: float = DEFAULT_TIMEOUT,
             reasoning: bool = True) -> None:
    """Grade the distinct (answer, reference) pairs of a whole task at once, so that the per-problem calls
    that follow find every verdict in the grader's cache. The grader spreads the pairs its cheap path cannot
    decide over parallel judge processes, which per-problem calls (a handful of pairs each) never do."""
    pairs = {(a, str(ref)) for responses, ref in problems for a in (answer_of(r, reasoning) for r in responses)
             if a is not None}
    if pairs:
        # one core stays with this process; on a 2-core machine a second judge only adds its start-up time
        equivalent_many(sorted(pairs), timeout=timeout, workers=max(1, (os.cpu_count() or 1) - 1))


def clear_cache() -> None:
    """Drop cached scores (they hold the responses, which can be gigabytes for a full AIME run)."""
    _score_cached.cache_clear()


@lru_cache(maxsize=4096)
def _score_cached(responses: tuple[str, ...], reference: str, timeout: float, reasoning: bool) -> ProblemScore:
    answers = tuple(answer_of(r, reasoning) for r in responses)
    # one grader call per distinct answer: 64 samples of one problem usually share a handful of answers
    verdict = {a: is_equivalent(a, reference, timeout=timeout) for a in set(answers) if a is not None}
    correct = tuple(a is not None and verdict[a] for a in answers)
    # without a think block the text alone cannot tell a cut-off response: with_lengths() decides from token counts
    truncated = tuple(THINK_CLOSE not in r for r in responses) if reasoning else (False,) * len(responses)
    return ProblemScore(answers, correct, truncated, majority_is_correct(answers, correct, timeout))


def majority_is_correct(answers: Sequence[str | None], correct: Sequence[bool], timeout: float) -> bool:
    """cons@k for one problem: does the largest class of equivalent answers hold the correct ones?

    Correct answers are one class (each is equivalent to the reference). Wrong answers are grouped first by a
    cheap normal form, then merged when the grader finds them equivalent. A tie goes to the class whose first
    member came first, as a plain vote over a list would."""
    n_correct = sum(correct)
    n_wrong = sum(1 for a, ok in zip(answers, correct, strict=True) if a is not None and not ok)
    if n_correct == 0:
        return False
    if n_correct > n_wrong:
        return True  # no wrong class can outvote it
    first_correct = correct.index(True)
    for size, first in wrong_answer_classes(answers, correct, timeout):
        if size > n_correct or (size == n_correct and first < first_correct):
            return False
    return True


def wrong_answer_classes(answers: Sequence[str | None], correct: Sequence[bool], timeout: float) -> list[tuple[int, int]]:
    """(size, index of first member) of each class of mutually equivalent wrong answers."""
    groups: dict[str, list[int]] = {}  # normal form -> indices of its answers
    for i, (a, ok) in enumerate(zip(answers, correct, strict=True)):
        if a is not None and not ok:
            groups.setdefault(_normal_form(a), []).append(i)
    classes: list[tuple[str, list[int]]] = []  # representative answer, member indices
    for members in sorted(groups.values(), key=len, reverse=True):
        rep = answers[members[0]]
        for c_rep, c_members in classes:
            if is_equivalent(rep, c_rep, timeout=timeout):
                c_members.extend(members)
                break
        else:
            classes.append((rep, list(members)))
    return [(len(m), min(m)) for _, m in classes]


_SPACING = re.compile(r"\\[,;:!]|\\left|\\right|\\displaystyle|\s|\$")


def _normal_form(answer: str) -> str:
    """A cheap normal form that merges answers differing only in spacing or \\left/\\right or \\dfrac."""
    text = _SPACING.sub("", answer)
    return text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")


def pass_at_k_ladder(k: int) -> list[int]:
    """1, 2, 4, ... up to k, and k itself."""
    ladder = [2**i for i in range(k.bit_length()) if 2**i <= k]
    return ladder if ladder[-1] == k else ladder + [k]


def summarize(scores: Sequence[ProblemScore], tokens: Sequence[Sequence[int]] | None = None,
              max_tokens: int | None = None) -> dict[str, object]:
    """Task-level metrics from per-problem scores (and response lengths in tokens, when known)."""
    assert scores, "summarize needs at least one scored problem"
    k = min(s.samples for s in scores)
    shares = [s.pass_at_1 for s in scores]
    n = len(scores)
    samples = sum(s.samples for s in scores)
    result: dict[str, object] = {
        "pass@1": statistics.fmean(shares),
        "pass@1_stderr": statistics.stdev(shares) / math.sqrt(n) if n > 1 else None,
        **sampling_noise(shares, k),  # the part of it that more samples per problem would shrink
        "cons@k": statistics.fmean(float(s.majority_correct) for s in scores)
        if all(s.majority_correct is not None for s in scores) else None,
        "pass@k": statistics.fmean(s.pass_at(k) for s in scores),
        "k": k,
        "n": n,
        "samples": samples,
        "truncated": sum(sum(s.truncated) for s in scores) / samples,
        "no_answer": sum(sum(a is None for a in s.answers) for s in scores) / samples,
        "pass@k_curve": {str(j): statistics.fmean(s.pass_at(j) for s in scores) for j in pass_at_k_ladder(k)},
    }
    if tokens is not None:
        flat = [t for per_problem in tokens for t in per_problem]
        result["mean_tokens"] = statistics.fmean(flat) if flat else None
        if max_tokens:
            result["hit_max_tokens"] = sum(t >= max_tokens for t in flat) / len(flat) if flat else None
    return result
