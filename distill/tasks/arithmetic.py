"""The demo's task pack: long sums of small numbers, solved step by step with running totals.

    task = SumTask()                                   # eight one-digit terms
    rows = task.prompts("train", 2000)                 # PROMPT rows; "test" rows never repeat a train problem
    solve([3, 8, 5])                                   # Solution(think='running totals: 03, 11, 16', answer='16')

A prompt row:
    {"id": "sum8x1-train-00000", "problem": "What is 3 + 8 + 5 + 9 + 2 + 7 + 4 + 6?", "answer": "44",
     "source": "distill-arithmetic/sum8x1"}

Why this task: the answer needs eight dependent additions. A tiny transformer asked for the answer directly has
to do all of them in one forward pass and only guesses near the mean; written out as running totals, every
step is one small addition whose inputs sit at fixed distances (the previous total, and the term it adds), and
a ~1M-parameter model learns it in a few hundred steps. The totals are zero-padded to the width of a prompt
term plus its " + " separator, so that each total sits exactly as far from the next as the terms do in the
prompt: the lookup is a constant relative offset, which rotary attention learns quickly. Without the padding
the offset drifts by a token every time the total gains a digit.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from distill.core.errors import DistillError
from distill.core.protocol import THINK_CLOSE, THINK_OPEN

Split = Literal["train", "test"]
SOURCE = "distill-arithmetic"
TEST_SHARE = 8  # one problem in 8 (by hash) belongs to the held-out test split
_SUM_RE = re.compile(r"(\d+(?:[ \t]*\+[ \t]*\d+)+)")


class Solution(NamedTuple):
    think: str  # the reasoning, without the <think> tags
    answer: str


@dataclass(frozen=True)
class SumTask:
    """Sums of `terms` numbers of `digits` digits each."""

    terms: int = 8
    digits: int = 1

    def __post_init__(self) -> None:
        largest = self.terms * (10**self.digits - 1)
        if self.terms < 2 or self.digits < 1:
            raise DistillError(f"a sum task needs at least 2 terms of at least 1 digit, not {self.terms}x{self.digits}")
        if len(str(largest)) > self.digits + 1:
            # the trace layout needs every total to fit in digits+1 characters (see the module docstring)
            raise DistillError(
                f"{self.terms} terms of {self.digits} digits can reach {largest}, wider than {self.digits + 1} digits; "
                f"use at most {(10 ** (self.digits + 1) - 1) // (10**self.digits - 1)} terms"
            )

    @property
    def name(self) -> str:
        return f"sum{self.terms}x{self.digits}"

    def sample(self, split: Split, n: int, seed: int = 0) -> list[tuple[int, ...]]:
        """`n` distinct problems of one split, reproducible from `seed`."""
        rng = random.Random(f"{self.name}:{seed}:{split}")
        low, high = (1 if self.digits == 1 else 10 ** (self.digits - 1)), 10**self.digits - 1
        found: dict[tuple[int, ...], None] = {}
        while len(found) < n:
            terms = tuple(rng.randint(low, high) for _ in range(self.terms))
            if split_of(terms) == split:
                found[terms] = None
        return list(found)

    def prompts(self, split: Split, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """PROMPT rows (id, problem, answer, source) for `n` problems of `split`."""
        return [
            {"id": f"{self.name}-{split}-{i:05d}", "problem": problem_text(terms), "answer": str(sum(terms)),
             "source": f"{SOURCE}/{self.name}"}
            for i, terms in enumerate(self.sample(split, n, seed))
        ]


def split_of(terms: Sequence[int]) -> Split:
    """The split a problem belongs to, by a hash of its multiset of terms: the same numbers in another order
    are the same problem, so no test problem is a reordering of a train problem, whatever the seeds."""
    key = ",".join(map(str, sorted(terms)))
    return "test" if int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % TEST_SHARE == 0 else "train"


def problem_text(terms: Sequence[int]) -> str:
    return "What is " + " + ".join(map(str, terms)) + "?"


def parse_problem(text: str) -> list[int] | None:
    """The terms of the first `a + b + ...` in a prompt (the user turn also holds the instruction line)."""
    match = _SUM_RE.search(text)
    return [int(t) for t in re.split(r"\s*\+\s*", match.group(1).strip())] if match else None


def total_width(terms: Sequence[int]) -> int:
    """Digits per running total: a term's width plus one, or the total's own width if that is wider."""
    return max(len(str(max(terms))) + 1, len(str(sum(terms))))


def running_totals(terms: Sequence[int], start: int = 0) -> list[int]:
    totals, total = [], start
    for term in terms:
        total += term
        totals.append(total)
    return totals


def format_totals(totals: Sequence[int], width: int) -> str:
    return "running totals: " + ", ".join(f"{t:0{width}d}" for t in totals)


def solve(terms: Sequence[int]) -> Solution:
    """The correct step-by-step solution of a sum."""
    totals = running_totals(terms)
    return Solution(format_totals(totals, total_width(terms)), str(totals[-1]))


def completion_text(think: str, answer: str) -> str:
    """The R1 completion form: reasoning in <think>, then the answer in \\boxed{} (what curate and eval grade)."""
    return f"{THINK_OPEN}\n{think}\n{THINK_CLOSE}\n\nThe answer is \\boxed{{{answer}}}."
