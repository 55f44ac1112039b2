"""Benchmark: the grader's verdicts against real labels and against plain math-verify, in one run.

    python benchmarks/grader_agreement.py                # real traces + the equivalent-form corpus
    python benchmarks/grader_agreement.py --no-real      # the corpus only

1. Real labels: the 640 Sky-T1 traces of ../shared/data/real_traces, graded by `distill.grading.answers` (tags
   normalised to `<think>`), against the label the source's own evaluator gave (finished traces, and all).
2. Equivalent forms: every MATH-500, AIME 2024 and AIME 2025 reference, written the ways a model writes it
   (`\\dfrac`, spacing, `x =`/`AB =` labels, chains `n = 4 + 1 = 5`, `\\approx`, decimals, thousands separators,
   AIME zero padding, several boxes for a multi-valued answer, `pct`, an implicit equation for `y = ...`) and
   wrong the ways a model gets it wrong (off by one, a swapped tuple, a missing root, `32, 349` for 32349, a
   wrong chain end). The expected verdict is known by construction. Each pair is an answer text with its box(es)
   after `</think>`; ours grades the completion, math-verify parses the same answer text and the reference
   (`verify(parse(gold), parse(answer))`, its default configs, as lm-eval's minerva_math500 calls it).

Prints, per form, how often each side gives the expected verdict, where they differ, and the time each took.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------- real labels


def real_agreement(data_dir: Path) -> dict:
    from distill.grading.answers import equivalent_many, grade_many, normalize_tags

    rows = [json.loads(line) for line in (data_dir / "real_traces" / "skythought_math_traces.jsonl").open()]
    verdicts = grade_many([normalize_tags(r["completion"]) for r in rows], [r["reference_answer"] for r in rows])
    finished = [r["label_correct"] == v.correct for r, v in zip(rows, verdicts, strict=True)
                if "<|end_of_solution|>" in r["completion"]]
    own = equivalent_many([(r["source_pred"], r["reference_answer"]) for r in rows])
    return {"finished": sum(finished), "finished_n": len(finished),
            "all": sum(r["label_correct"] == v.correct for r, v in zip(rows, verdicts, strict=True)),
            "all_n": len(rows),
            "source_extractions": sum(ok == r["label_correct"] for (ok, _), r in zip(own, rows, strict=True))}


# ---------------------------------------------------------------- the equivalent-form corpus


def _int(s: str) -> int | None:
    return int(s) if re.fullmatch(r"-?\d+", s.strip()) else None


def _fraction(s: str) -> Fraction | None:
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", s.replace(" ", ""))
    return Fraction(int(m[2]), int(m[3])) * (-1 if m[1] else 1) if m else None


def _top_level_items(s: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, c in enumerate(s):
        depth += 1 if c in "([{" else -1 if c in ")]}" else 0
        if c == "," and depth == 0:
            items.append(s[start:i].strip())
            start = i + 1
    return [*items, s[start:].strip()]


def boxed(answer: str) -> str:
    return f"The answer is $\\boxed{{{answer}}}$."


def forms(gold: str) -> list[tuple[str, str, bool]]:
    """(form name, answer text after </think>, expected verdict) for one reference."""
    out = [("verbatim", boxed(gold), True)]
    if "\\frac" in gold:
        out.append(("dfrac", boxed(gold.replace("\\frac", "\\dfrac")), True))
    thousands = re.fullmatch(r"(?:\\\$)?\d{1,3}(?:,(?:\\!)?\s*\d{3})+", gold)  # 58,500 and 10,\!080: one number
    if (" " in gold or "," in gold) and not thousands:
        out.append(("spacing", boxed(gold.replace(" ", "").replace(",", ", ")), True))
    n, q = _int(gold), _fraction(gold)
    items = _top_level_items(gold)
    if n is not None:
        out += [("label x =", boxed(f"x = {n}"), True), ("label AB =", boxed(f"AB = {n}"), True),
                ("chain", boxed(f"n = {n - 1} + 1 = {n}"), True), ("approx", boxed(f"x \\approx {n}"), True),
                ("wrong: off by one", boxed(str(n + 1)), False),
                ("wrong: label", boxed(f"AB = {n + 1}"), False),
                ("wrong: chain end", boxed(f"n = {n} + 1 = {n + 1}"), False)]
        if 0 <= n < 100:
            out.append(("aime padding", boxed(f"{n:03d}"), True))
        if n >= 1000:
            out += [("thousands 1,234", boxed(f"{n:,}"), True),
                    ("thousands 1{,}234", boxed(f"{n:,}".replace(",", "{,}")), True)]
        if n >= 10000:
            s = str(n)
            out.append(("wrong: list, not thousands", boxed(f"{s[:2]}, {s[2:]}"), False))
    if q is not None:
        out.append(("wrong: inverted fraction", boxed(f"\\frac{{{q.denominator}}}{{{q.numerator}}}"), q * q == 1))
        out.append(("label + approx", boxed(f"x = {gold} \\approx {float(q):.3f}"), True))
        out.append(("decimal (6 places)", boxed(f"{float(q):.6f}".rstrip("0")), True))
    if len(items) >= 2 and not gold.startswith(("(", "[", "\\{")) and not thousands:
        sep = " \\quad \\text{and} \\quad "
        out.append(("several boxes", "The answers are $" + sep.join(f"\\boxed{{{x}}}" for x in items[::-1]) + "$.",
                    True))
        out.append(("wrong: a box missing", "The answers are $" + sep.join(f"\\boxed{{{x}}}" for x in items[1:])
                    + "$.", False))
    if gold.count("\\pm") == 1 and len(items) == 1 and not gold.startswith("\\{"):  # 1 \pm \sqrt{19}: its two values in two boxes
        both = [gold.replace("\\pm", "+"), gold.replace("\\pm", "-")]
        out.append(("several boxes (\\pm)", f"$\\boxed{{{both[1]}}}$ and $\\boxed{{{both[0]}}}$", True))
        out.append(("wrong: one of two (\\pm)", boxed(both[0]), False))
    if gold.startswith("(") and gold.endswith(")") and len(items) == 1:
        inner = _top_level_items(gold[1:-1])
        if len(inner) >= 2 and inner[0] != inner[1]:
            out.append(("wrong: swapped tuple", boxed("(" + ", ".join([inner[1], inner[0], *inner[2:]]) + ")"), False))
    if re.search(r"[a-z]", gold) and "=" not in gold and len(items) == 1 and "\\" not in gold:
        out.append(("label f(x) =", boxed(f"f(x) = {gold}"), True))  # expressions: 2k+2, p - q
    if gold.startswith("(") and gold.endswith(")") and len(items) == 1:
        names = "pqrstuvw"[: len(_top_level_items(gold[1:-1]))]
        out.append(("label (p, q) =", boxed(f"({', '.join(names)}) = {gold}"), True))
    m = re.fullmatch(r"y\s*=\s*(.+)", gold)
    if m:
        out.append(("implicit equation", boxed(f"{m[1]} - y = 0"), True))
    if "\\%" in gold:
        out.append(("pct", boxed(gold.replace("\\%", " pct")), True))
    return out


def corpus(data_dir: Path) -> list[tuple[str, str, str, bool]]:
    golds = [json.loads(line)["answer"] for name in ("math500", "aime24", "aime25")
             for line in (data_dir / f"{name}.jsonl").open()]
    return [(form, text, str(gold), expected) for gold in golds for form, text, expected in forms(str(gold))]


def ours(pairs: list[tuple[str, str, str, bool]]) -> tuple[float, list[bool]]:
    from distill.grading.answers import grade_many

    start = time.perf_counter()
    verdicts = grade_many([f"<think>\n...\n</think>\n\n{text}" for _, text, _, _ in pairs], [g for _, _, g, _ in pairs])
    return time.perf_counter() - start, [v.correct for v in verdicts]


def math_verify(pairs: list[tuple[str, str, str, bool]]) -> tuple[float, list[bool]]:
    import logging
    import warnings

    from math_verify import parse, verify

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    start = time.perf_counter()
    verdicts = []
    for _, text, gold, _ in pairs:
        try:
            verdicts.append(bool(verify(parse(f"${gold}$"), parse(text))))
        except Exception:  # noqa: BLE001 - a failure of math-verify is its "not equal"
            verdicts.append(False)
    return time.perf_counter() - start, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--no-real", action="store_true", help="skip the 640 real traces")
    parser.add_argument("--show", type=int, default=3, help="differences to print per form")
    args = parser.parse_args()
    if not (args.data_dir / "math500.jsonl").is_file():
        parser.error(f"no math500.jsonl in {args.data_dir}: pass --data-dir (the shared data folder)")

    result = {}
    if not args.no_real:
        real = real_agreement(args.data_dir)
        print(f"real labels: finished {real['finished']}/{real['finished_n']}, all {real['all']}/{real['all_n']}, "
              f"on the source's own extractions {real['source_extractions']}/{real['all_n']}", flush=True)
        result["real"] = real

    pairs = corpus(args.data_dir)
    ours_s, got = ours(pairs)
    mv_s, mv = math_verify(pairs)
    by_form: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (form, _, _, expected), a, b in zip(pairs, got, mv, strict=True):
        row = by_form[form]
        row[0] += 1
        row[1] += a == expected
        row[2] += b == expected
        row[3] += a == b
    print(f"\n{'form':<28} {'pairs':>6} {'ours right':>11} {'math-verify right':>18} {'same verdict':>13}")
    for form, (n, a, b, same) in sorted(by_form.items()):
        print(f"{form:<28} {n:>6} {a:>11} {b:>18} {same:>13}")
    n = len(pairs)
    right_ours, right_mv = sum(a == p[3] for p, a in zip(pairs, got, strict=True)), sum(
        b == p[3] for p, b in zip(pairs, mv, strict=True))
    same = sum(a == b for a, b in zip(got, mv, strict=True))
    print(f"{'all':<28} {n:>6} {right_ours:>11} {right_mv:>18} {same:>13}")
    print(f"time: ours {ours_s:.1f} s, math-verify {mv_s:.1f} s")
    shown: dict[str, int] = defaultdict(int)
    for (form, text, gold, expected), a, b in zip(pairs, got, mv, strict=True):
        if a != b and shown[form] < args.show:
            shown[form] += 1
            print(f"  differ [{form}] expected {expected}: ours {a}, math-verify {b}: {text!r} vs {gold!r}")
    result.update({"pairs": n, "ours_right": right_ours, "math_verify_right": right_mv, "same_verdict": same,
                   "ours_s": round(ours_s, 2), "math_verify_s": round(mv_s, 2)})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
