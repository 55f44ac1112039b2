"""Benchmark: scoring k x 500 MATH-500 responses of R1-like length, distill's scorer vs lm-eval's minerva_math500.

    python benchmarks/eval_scoring.py                 # 64 x 500 = 32,000 responses (the target: < 60 s)
    python benchmarks/eval_scoring.py --n 2000        # a quick look

Both sides score the same synthetic responses, built from MATH-500 (problems and reference answers) and from
real long reasoning text (the paragraphs of ../shared/data/real_traces): a think block of lognormal length
(median ~2,500 tokens, capped at 32K), then `</think>` and a boxed answer in the styles MATH-500 answers come
in. Per problem a difficulty is drawn; a sample is then correct (the reference verbatim or an equivalent
rewrite: \\dfrac, spacing, decimals, `x = `), wrong (one of a few wrong answers the problem attracts), cut off
at the token limit (no `</think>`), or unboxed.

- ours: `distill.eval.metrics.score_problem` on each problem's k responses, as the tasks' process_results calls it
  (answer after `</think>`, one grader call per distinct answer, cons@k), then the task summary.
- baseline: lm-eval minerva_math500's `math_verify` metric, per response `verify(parse(solution),
  parse(response))` as its process_results does. (Its other half, exact_match, needs sympy's LaTeX parser
  built for antlr 4.11; with the installed antlr it cannot run, and it is the slower half when it does.)

The last line printed is one JSON object: n, ours_s, baseline_s, ratio (baseline_s / ours_s), and how often
the two agree on correctness.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHARS_PER_TOKEN = 3.6  # English + LaTeX reasoning text with a Qwen/Llama tokenizer
MAX_TOKENS = 32768


# ---------------------------------------------------------------- synthetic responses


def reasoning_paragraphs(data_dir: Path) -> list[str]:
    """Paragraphs of real long reasoning (their own tags removed) to build think blocks from."""
    tags = re.compile(r"<\|(begin|end)_of_(thought|solution)\|>")
    paragraphs = []
    for line in (data_dir / "real_traces" / "skythought_math_traces.jsonl").open():
        text = tags.sub("", json.loads(line)["completion"])
        paragraphs += [p.strip() for p in text.split("\n\n") if len(p.strip()) > 40]
    return paragraphs


def equivalent_form(answer: str, rng: random.Random) -> str:
    """The reference written another way a model might write it (all still equal to it)."""
    number = _as_fraction(answer)
    options = [answer.replace(" ", ""), answer.replace("\\frac", "\\dfrac")]
    if number is not None:
        options.append(f"x = {answer}")
    if number is not None:
        if number.denominator == 1:
            options.append(f"{number.numerator}.0")
        elif 10**6 % number.denominator == 0:
            options.append(f"{float(number):g}")
        else:
            options.append(f"{number.numerator}/{number.denominator}")
    return rng.choice(options)


def _as_fraction(answer: str) -> Fraction | None:
    m = re.fullmatch(r"\s*(-?\d+)\s*", answer) or re.fullmatch(r"\s*\\d?frac\{(-?\d+)\}\{(\d+)\}\s*", answer)
    if not m:
        return None
    return Fraction(int(m.group(1)), int(m.group(2)) if m.lastindex == 2 else 1)


def wrong_answers(answer: str, others: list[str], rng: random.Random) -> list[str]:
    """A few wrong answers a problem attracts: off-by-one or doubled numbers, or other problems' answers."""
    number = _as_fraction(answer)
    pool = [rng.choice(others) for _ in range(3)]
    if number is not None and number.denominator == 1:
        pool += [str(number.numerator + 1), str(2 * number.numerator)]
    return [w for w in pool if w.strip() != answer.strip()][: rng.randint(1, 4)] or ["0"]


def think_block(paragraphs: list[str], tokens: int, rng: random.Random) -> str:
    target = int(tokens * CHARS_PER_TOKEN)
    parts, size = [], 0
    while size < target:
        p = rng.choice(paragraphs)
        parts.append(p)
        size += len(p) + 2
    return "\n\n".join(parts)[:target]


def synthesize(problems: list[dict], k: int, paragraphs: list[str], seed: int) -> list[tuple[dict, list[str]]]:
    rng = random.Random(seed)
    answers = [p["answer"] for p in problems]
    out = []
    for problem in problems:
        p_correct = rng.betavariate(4, 1.2)  # most MATH-500 problems are easy for an R1 student, some are not
        wrong = wrong_answers(problem["answer"], answers, rng)
        responses = []
        for _ in range(k):
            tokens = min(MAX_TOKENS, int(rng.lognormvariate(math.log(2500), 0.8)))
            roll = rng.random()
            if roll < 0.05 or tokens >= MAX_TOKENS:  # ran out of tokens while thinking
                responses.append("<think>\n" + think_block(paragraphs, MAX_TOKENS, rng))
                continue
            think = think_block(paragraphs, tokens, rng)
            if rng.random() < 0.3:  # a provisional box inside the reasoning, which must not count
                think += f"\n\nSo maybe \\boxed{{{rng.choice(wrong)}}}? Let me double-check."
            if roll < 0.08:
                final = "I could not finish this problem."
            elif rng.random() < p_correct:
                boxed = problem["answer"] if rng.random() < 0.7 else equivalent_form(problem["answer"], rng)
                final = f"Putting it together, the answer is $\\boxed{{{boxed}}}$."
            else:
                final = f"Therefore the answer is $\\boxed{{{rng.choice(wrong)}}}$."
            responses.append(f"<think>\n{think}\n</think>\n\n{final}")
        out.append((problem, responses))
    return out


# ---------------------------------------------------------------- the two scorers


def score_ours(batches) -> tuple[float, list[bool]]:
    """The tasks' path: the grade_all filter over the whole task, then process_results per problem."""
    from distill.eval.metrics import prefetch, score_problem, summarize

    start = time.perf_counter()
    prefetch([(responses, problem["answer"]) for problem, responses in batches])
    scores = [score_problem(responses, problem["answer"]) for problem, responses in batches]
    summarize(scores)
    elapsed = time.perf_counter() - start
    return elapsed, [c for s in scores for c in s.correct]


def score_baseline(batches) -> tuple[float, list[bool]]:
    """lm-eval minerva_math500's math_verify metric: verify(parse(solution), parse(response)) per response."""
    import logging

    from math_verify import parse, verify  # what lm_eval/tasks/minerva_math/utils.py imports and calls

    # math-verify logs every parse that hits its 5 s timeout with the whole response; keep the output readable
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    start = time.perf_counter()
    verdicts = []
    for problem, responses in batches:
        for response in responses:
            verdicts.append(bool(verify(gold=parse(problem["solution"]), target=parse(response))))
    return time.perf_counter() - start, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=32000, help="responses in all (k = n / 500 per problem)")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    problems = [json.loads(line) for line in (args.data_dir / "math500.jsonl").open()]
    k = max(1, args.n // len(problems))
    problems = problems[: max(1, min(len(problems), args.n // k))]
    t0 = time.perf_counter()
    batches = synthesize(problems, k, reasoning_paragraphs(args.data_dir), args.seed)
    n = sum(len(r) for _, r in batches)
    chars = sum(len(x) for _, r in batches for x in r)
    print(f"synthesised {n:,} responses ({len(problems)} problems x {k}), mean {chars / n / CHARS_PER_TOKEN:,.0f} "
          f"tokens, {chars / 1e6:,.0f} MB, in {time.perf_counter() - t0:.1f} s", flush=True)

    ours_s, ours = score_ours(batches)
    print(f"ours (distill.eval.metrics, process_results path): {ours_s:.1f} s, {n / ours_s:,.0f} responses/s, "
          f"pass@1 {sum(ours) / n:.3f}", flush=True)
    baseline_s, base = score_baseline(batches)
    print(f"baseline (lm-eval minerva_math500 math_verify): {baseline_s:.1f} s, {n / baseline_s:,.0f} responses/s, "
          f"accuracy {sum(base) / n:.3f}", flush=True)
    agree = sum(a == b for a, b in zip(ours, base, strict=True)) / n
    print(json.dumps({"n": n, "k": k, "ours_s": round(ours_s, 2), "baseline_s": round(baseline_s, 2),
                      "ratio": round(baseline_s / ours_s, 1), "agreement": round(agree, 4)}))


if __name__ == "__main__":
    main()
