"""How much of a pass@1 is sampling noise, and how many samples per problem would tame it.

    noise = sampling_noise([1.0, 0.25, 0.0, 0.5], k=4)
    # {"pass@1_sampling_stderr": 0.0895, "samples_for_1pt": 321}
    wide_stderr_warning("aime25", {**noise, "k": 4, "n": 4})   # "aime25: pass@1 moves by ± 9.0 points ..."

pass@1_stderr (distill.eval.metrics) is the spread across problems: it says how far another set of problems like
these would move the score, and no number of samples shrinks it (AIME's 30 problems keep it near ±5-8 points).
What k controls is the other part: for *these* problems, how far another draw of k samples would move the score.
That is the number to check before comparing two runs on the same benchmark, and the one warned about here.

The rule: a task is flagged when its sampling standard error is above WIDE (2 points); the warning says how many
samples per problem would bring it under TARGET (1 point).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

WIDE = 0.02  # warn above 2 points (pass@1 is a fraction)
TARGET = 0.01  # ... and say what k brings it under 1 point


def sampling_noise(shares: Sequence[float], k: int) -> dict[str, Any]:
    """The sampling standard error of pass@1 over these problems, and the k that would bring it under TARGET.

    Problem i has a true solve rate p_i; its k samples give the share p^_i, whose variance is p_i (1 - p_i) / k.
    pass@1 is the mean of n such shares, so  Var(pass@1) = sum_i p_i (1 - p_i) / (k n^2).
    p^_i (1 - p^_i) underestimates p_i (1 - p_i) by the factor (k - 1) / k, so v_i = p^_i (1 - p^_i) k / (k - 1)
    is the unbiased per-problem variance, and
        stderr(k')  = sqrt(sum_i v_i / k') / n          for any k' samples per problem,
        k' needed   = ceil(sum_i v_i / (n * TARGET)^2)  for stderr(k') <= TARGET.
    With k = 1 a problem's variance cannot be seen; sum_i p_i (1 - p_i) <= n p (1 - p) (p the mean, by
    concavity) is used instead, an upper bound.
    """
    n = len(shares)
    if n == 0 or k < 1:
        return {"pass@1_sampling_stderr": None, "samples_for_1pt": None}
    if k == 1:
        mean = sum(shares) / n
        total = n * mean * (1 - mean)
    else:
        total = sum(p * (1 - p) * k / (k - 1) for p in shares)
    stderr = math.sqrt(total / k) / n
    needed = max(1, math.ceil(total / (n * TARGET) ** 2 - 1e-9)) if total > 0 else k
    return {"pass@1_sampling_stderr": stderr, "samples_for_1pt": needed}


def wide_stderr_warning(name: str, task: dict[str, Any]) -> str | None:
    """One line when the task's sampling noise is above WIDE (a task from before these fields: None)."""
    stderr = task.get("pass@1_sampling_stderr")
    if stderr is None or stderr <= WIDE:
        return None
    bound = "up to " if task["k"] == 1 else ""  # one sample per problem shows no per-problem variance: the bound
    return (f"{name}: pass@1 moves by {bound}± {100 * stderr:.1f} points from sampling alone (k={task['k']} samples on "
            f"{task['n']} problems, above the {100 * WIDE:.0f}-point warning line); about {task['samples_for_1pt']} "
            f"samples per problem (--samples) would bring it under {100 * TARGET:.0f} point")
