"""Selection in curate, beyond dropping rows by rule: per-prompt pass rates over the k samples, majority-vote
references for prompts without one, and the budgeted `select` step.

    rates = pass_rates([("p1", True), ("p1", False), ("p2", None)])   # {"p1": (1, 2)}: p2 has no reference
    majority_answer(["5", "5.0", "6", None])                          # ("5", 2): equivalent answers vote together
    left_out = choose(live, table, rates, SelectParams(budget=100, by="hardest"))   # [(position, why), ...]

Every order is a pure function of ids and the seed, never of the input's row order, so the same traces sharded
another way (generate --part I/N, a resumed run) select the same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from distill.grading.answers import is_equivalent, normalize_answer

# ---------------------------------------------------------------- pass rates


def pass_rates(samples: Iterable[tuple[str, bool | None]]) -> dict[str, tuple[int, int]]:
    """{prompt id: (correct samples, samples)} over every sample of each prompt that has a verdict; prompts
    none of whose samples could be graded (no reference) have no pass rate and are left out."""
    counts: dict[str, list[int]] = {}
    graded: set[str] = set()
    for pid, ok in samples:
        c = counts.setdefault(pid, [0, 0])
        c[0] += bool(ok)
        c[1] += 1
        if ok is not None:
            graded.add(pid)
    return {pid: (c, n) for pid, (c, n) in counts.items() if pid in graded}


def histogram(rates: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Prompts per pass rate: per exact share ("3/4") when every prompt has the same k <= 16, else per tenth."""
    ks = {n for _, n in rates.values()}
    if len(ks) == 1 and max(ks) <= 16:
        k = ks.pop()
        found = [c for c, _ in rates.values()]
        return {f"{c}/{k}": found.count(c) for c in range(k + 1)}
    bins = [0] * 10
    for c, n in rates.values():
        bins[min(int(10 * c / n), 9)] += 1
    return {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": b for i, b in enumerate(bins)}


# ---------------------------------------------------------------- majority-vote references


def majority_answer(answers: Sequence[str | None], timeout: float = 5.0) -> tuple[str | None, int]:
    """(the answer of the largest class of equivalent answers, its votes), as cons@k groups them: a cheap normal
    form first, then classes the grader finds equivalent merge. A tie for the largest class gives no answer."""
    groups: dict[str, list[str]] = {}
    for a in answers:
        if a is not None and a.strip():
            groups.setdefault(normalize_answer(a), []).append(a)
    classes: list[list[str]] = []
    for members in sorted(groups.values(), key=len, reverse=True):
        for c in classes:
            if is_equivalent(members[0], c[0], timeout=timeout):
                c.extend(members)
                break
        else:
            classes.append(list(members))
    if not classes:
        return None, 0
    sizes = sorted((len(c) for c in classes), reverse=True)
    if len(sizes) > 1 and sizes[0] == sizes[1]:
        return None, sizes[0]
    top = max(classes, key=len)
    return top[0], len(top)


def majority_references(ballots: dict[str, list[str | None]], timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """{prompt id: {answer (None on a tie or no answer), votes, samples, agreement}} for each prompt voted on."""
    out = {}
    for pid in sorted(ballots):
        answers = ballots[pid]
        answer, votes = majority_answer(answers, timeout)
        out[pid] = {"answer": answer, "votes": votes, "samples": len(answers),
                    "agreement": round(votes / len(answers), 4) if answers and answer is not None else 0.0}
    return out


# ---------------------------------------------------------------- the select step


def _hash(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()


def _rate(rates: dict[str, tuple[int, int]], pid: str) -> float | None:
    c_n = rates.get(pid)
    return c_n[0] / c_n[1] if c_n else None


def choose(live: list[int], table: dict[str, Any], rates: dict[str, tuple[int, int]], p: Any
           ) -> list[tuple[int, str]]:
    """The rows of `live` (positions in `table`) that the select step leaves out, with why. `p` is the config's
    SelectParams; `table` holds id, prompt_id, num_tokens, source and verified columns."""
    ids, pids = table["id"], table["prompt_id"]
    left_out: list[tuple[int, str]] = []
    if p.by == "shortest_correct":
        best: dict[str, int] = {}
        for pos in live:
            if table["verified"][pos]:
                key = (int(table["num_tokens"][pos]), ids[pos])
                if pids[pos] not in best or key < (int(table["num_tokens"][best[pids[pos]]]), ids[best[pids[pos]]]):
                    best[pids[pos]] = pos
        chosen = set(best.values())
        left_out = [(pos, "not the shortest correct sample of its prompt") for pos in live if pos not in chosen]
        live = sorted(chosen)
    if p.budget is None or len(live) <= p.budget:
        return sorted(left_out)
    order = sorted(live, key=_order_key(live, table, rates, p))
    why = f"{p.by}: outside the budget of {p.budget:,}"
    return sorted(left_out + [(pos, why) for pos in order[p.budget:]])


def _order_key(live: list[int], table: dict[str, Any], rates: dict[str, tuple[int, int]], p: Any):
    ids, pids = table["id"], table["prompt_id"]
    if p.by == "hardest":  # lowest pass rate first; prompts without one (no reference) last
        def key(pos):
            rate = _rate(rates, pids[pos])
            return (2.0 if rate is None else rate, _hash(p.seed, pids[pos]), ids[pos])
        return key
    if p.by == "longest":  # OpenThoughts3: prompts by response length, longest first (mean over their rows)
        totals: dict[str, list[int]] = {}
        for pos in live:
            t = totals.setdefault(pids[pos], [0, 0])
            t[0] += int(table["num_tokens"][pos])
            t[1] += 1
        return lambda pos: (-totals[pids[pos]][0] / totals[pids[pos]][1], _hash(p.seed, pids[pos]), ids[pos])
    if p.by == "balanced":  # s1: round-robin over (source, difficulty bin), seeded order within each
        strata: dict[tuple[str, str], list[int]] = {}
        for pos in sorted(live, key=lambda q: _hash(p.seed, ids[q])):
            strata.setdefault(stratum(table, rates, pos, p.bins), []).append(pos)
        rank = {pos: (i, s) for s, members in strata.items() for i, pos in enumerate(members)}
        return lambda pos: rank[pos]
    return lambda pos: _hash(p.seed, ids[pos])  # random (and shortest_correct's budget)


def stratum(table: dict[str, Any], rates: dict[str, tuple[int, int]], pos: int, bins: int) -> tuple[str, str]:
    """(source, difficulty bin) of a row: bins are equal slices of the pass rate, 'unknown' without one."""
    rate = _rate(rates, table["prompt_id"][pos])
    difficulty = "unknown" if rate is None else str(min(int(rate * bins), bins - 1))
    source = table["source"][pos]
    return ("unknown" if source is None else str(source), difficulty)
