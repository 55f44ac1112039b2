"""Accuracy against thinking budget (`distill eval --budgets 256,1024,4096`): budget forcing as a measurement of
what each thousand thinking tokens buys a student, and whether it thinks longer than it needs to.

    curve = budget_curve(lm, items, budgets=[256, 1024], answer_tokens=1024, sampling={...}, journal_dir=...,
                         fingerprint={...}, score=lambda responses, doc: ProblemScore)
    curve["256"]   # {"pass@1": 0.31, "stderr": 0.04, "mean_think_tokens": 243.0, "forced": 0.92, "k": 4, "n": 30}

For each budget B, every sample of the task is drawn again from the same rendered prompt (`<think>` opened):
1. the model writes up to B tokens;
2. a sample that closed `</think>` and ended (EOS) within them is scored as it is;
3. one that closed `</think>` but ran out in its answer goes on for up to `answer_tokens` more;
4. one that did not close `</think>` within B tokens has its think block closed for it ("\\n</think>\\n\\n", as s1's budget forcing ends
   thinking, arXiv 2501.19393 §3.1) and answers within `answer_tokens`.
The responses are scored by the task's own grader, as the unforced samples are. Both passes are journaled like
the task itself (distill.eval.journal), so a killed curve resumes too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distill.core.protocol import THINK_CLOSE
from distill.eval.journal import SampleJournal
from distill.eval.metrics import summarize

FORCED_CLOSE = "\n" + THINK_CLOSE + "\n\n"


def budget_curve(lm: Any, items: Sequence[tuple[dict[str, Any], str]], budgets: Sequence[int], answer_tokens: int,
                 samples: int, sampling: dict[str, Any], journal_dir: Path, fingerprint: dict[str, Any],
                 score: Callable[[list[str], dict[str, Any]], Any], count_tokens: Callable[[str], int],
                 name: str = "task") -> dict[str, dict[str, Any]]:
    """{str(B): point} for each budget; `items` = (doc, rendered prompt) per problem, `samples` = k."""
    curve = {}
    for budget in budgets:
        contexts = [prompt for _, prompt in items for _ in range(samples)]
        first = _generate(lm, contexts, budget, sampling, journal_dir / f"{name}.budget-{budget}.jsonl",
                          {**fingerprint, "budget": budget})
        follow: list[tuple[int, str]] = []  # (position, text appended before the answer pass)
        think_tokens, forced = [], 0
        for i, text in enumerate(first):
            used = _tokens(lm, text, count_tokens)
            closed = THINK_CLOSE in text
            think_tokens.append(count_tokens(text.split(THINK_CLOSE, 1)[0]) if closed else min(used, budget))
            if not closed:
                forced += 1
                follow.append((i, FORCED_CLOSE))
            elif used >= budget:  # closed its thinking, then ran out of tokens in its answer
                follow.append((i, ""))
        responses = list(first)
        if follow:
            answer_contexts = [contexts[i] + first[i] + extra for i, extra in follow]
            answers = _generate(lm, answer_contexts, answer_tokens, sampling,
                                journal_dir / f"{name}.budget-{budget}.answer.jsonl",
                                {**fingerprint, "budget": budget, "answer_tokens": answer_tokens})
            for (i, extra), answer in zip(follow, answers, strict=True):
                responses[i] = first[i] + extra + answer
        scores = [score(responses[j * samples:(j + 1) * samples], doc) for j, (doc, _) in enumerate(items)]
        metrics = summarize(scores)
        curve[str(budget)] = {
            "pass@1": metrics["pass@1"], "stderr": metrics["pass@1_stderr"],
            "mean_think_tokens": sum(think_tokens) / max(1, len(think_tokens)),
            "forced": forced / max(1, len(first)), "k": samples, "n": len(items),
        }
        for suffix in ("", ".answer"):  # the point is in results.json now
            (journal_dir / f"{name}.budget-{budget}{suffix}.jsonl").unlink(missing_ok=True)
    if journal_dir.is_dir() and not any(journal_dir.iterdir()):
        journal_dir.rmdir()
    return curve


def _generate(lm: Any, contexts: list[str], max_tokens: int, sampling: dict[str, Any], journal: Path,
              fingerprint: dict[str, Any]) -> list[str]:
    """Sampled continuations of `contexts`, through the backend's own generate_until (seeded and journaled)."""
    from lm_eval.api.instance import Instance

    gen = {"until": [], "max_gen_toks": max_tokens, "do_sample": True, **sampling}
    requests = [Instance(request_type="generate_until", doc={}, arguments=(c, dict(gen)), idx=0) for c in contexts]
    lm.journal = SampleJournal(journal, fingerprint)
    try:
        return lm.generate_until(requests)
    finally:
        lm.journal = None


def _tokens(lm: Any, text: str, count_tokens: Callable[[str], int]) -> int:
    """Tokens the backend generated for `text` (its own count, EOS included), else the text re-tokenized."""
    counted = getattr(lm, "token_counts", {}).get(text)
    return counted if counted is not None else count_tokens(text)
