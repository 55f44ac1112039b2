"""Throughput of `distill curate` next to a naive baseline, on the same synthetic R1-like traces, in one run.

    python benchmarks/curate_throughput.py --n 20000
    # ... disagreements, explained ...
    # {"ours_per_s": 1234.5, "baseline_per_s": 41.2, "ratio": 29.9, "disagreements": 17, ...}

The traces: prompts with k=4 samples each, R1-like lengths (log-normal, median ~3,000 tokens, capped at 32K),
and a realistic mix: correct answers written in the equivalent forms of the grader table
(tests/assets/grader_table.tsv: MATH-500 and AIME answer styles), wrong answers, truncated traces with a box
inside the unfinished reasoning, degenerate loops, missing boxes, and non-reasoning rows.

Ours: the whole stage, end to end (`curate()` with recipes/curate/r1_math.yaml, all cores): reading, every
filter, grading, dedup, decontamination, writing data, report and card. Baseline: what a script would do
without distill: math-verify `parse` on the full completion and the gold, then `verify`, one trace at a time
in one process. It is slow (~25 ms a trace), so it runs on `--baseline-n` rows spread evenly over the same
traces. Verdicts (correct or not) are compared on those rows; each disagreement is printed with its cause,
and where both sides read the same answer the grader table says who is right.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TABLE = REPO / "tests" / "assets" / "grader_table.tsv"
SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
WORDS = ("so the total is then we check each case again the remainder must divide both sides wait let me verify "
         "this step because the sign could flip hence the sum of the roots equals minus b over a and the product "
         "is c over a now substitute back into the original equation to confirm").split()


# How often each answer style is the gold in MATH-500 (500 answers: 311 integers, 56 fractions, 26 expressions,
# 24 radicals, ...), mapped onto the grader table's style names; the synthetic golds follow these weights.
STYLE_WEIGHTS = {
    ("aime padding", "integer", "thousands", "dollars", "power", "base"): 311,
    ("fraction", "mixed number", "decimal rounding"): 56,
    ("expression", "assignment"): 26,
    ("radical",): 24,
    ("tuple", "solution list"): 15,
    ("degrees",): 14,
    ("text", "units", "choice", "percent"): 12,
    ("pi",): 10,
    ("interval",): 9,
    ("complex",): 8,
    ("decimal",): 8,
    ("matrix",): 7,
}


def read_table() -> dict[str, list[tuple[str, bool]]]:
    """gold -> [(pred, verdict)] from the grader table."""
    by_gold: dict[str, list[tuple[str, bool]]] = {}
    for pred, gold, verdict, _ in table_rows():
        if pred:
            by_gold.setdefault(gold, []).append((pred, verdict))
    return by_gold


def table_rows() -> list[tuple[str, str, bool, str]]:
    rows = []
    for line in TABLE.read_text().splitlines():
        if line.startswith("#") or line.startswith("pred\t") or not line.strip():
            continue
        pred, gold, verdict, style = line.split("\t")
        rows.append((pred, gold, verdict == "1", style.split(" (")[0]))
    return rows


def gold_picker(rng: random.Random):
    """A function drawing golds with MATH-500's mix of answer styles."""
    by_style: dict[str, list[str]] = {}
    for _, gold, _, style in table_rows():
        by_style.setdefault(style, [])
        if gold not in by_style[style]:
            by_style[style].append(gold)
    groups = [[g for s in styles for g in by_style.get(s, [])] for styles in STYLE_WEIGHTS]
    weights = list(STYLE_WEIGHTS.values())
    return lambda: rng.choice(rng.choices(groups, weights)[0])


def paragraphs(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        n = rng.randint(30, 120)
        text = " ".join(rng.choice(WORDS) + (f" {rng.randint(2, 9999)}." if rng.random() < 0.12 else "") for _ in range(n))
        out.append(text[0].upper() + text[1:] + ".")
    return out


def reasoning(rng: random.Random, pool: list[str], tokens: int) -> str:
    parts, chars = [], 0
    while chars < tokens * 4:  # ~4 characters per token
        parts.append(rng.choice(pool))
        chars += len(parts[-1]) + 2
    return "\n\n".join(parts)


def make_row(rng, pool, table, prompt_id, sample, gold, problem) -> dict:
    tokens = min(32000, int(rng.lognormvariate(math.log(3000), 0.6)))
    think = reasoning(rng, pool, tokens)
    kind = rng.choices(["correct", "wrong", "truncated", "loop", "nobox", "v3"], [55, 20, 12, 5, 3, 5])[0]
    right = [p for p, ok in table[gold] if ok] or [gold]
    wrong = [p for p, ok in table[gold] if not ok] or [str(rng.randint(0, 999))]
    finish, teacher, answer = "stop", "deepseek-r1", gold
    if kind == "correct":  # teachers mostly write the reference's own form; some write an equivalent one
        form = gold if rng.random() < 0.6 else rng.choice(right)
        completion = f"<think>\n{think}\n</think>\n\nThus the answer is $\\boxed{{{form}}}$."
    elif kind == "wrong":
        completion = f"<think>\n{think}\n</think>\n\nThus the answer is $\\boxed{{{rng.choice(wrong)}}}$."
    elif kind == "truncated":  # boxed a guess mid-thought, then ran out of tokens
        completion = f"<think>\n{think[: len(think) // 2]} so maybe $\\boxed{{{rng.choice(right + wrong)}}}$? {think[len(think) // 2 :]}"
        finish, tokens = "length", 32768
    elif kind == "loop":
        completion = f"<think>\n{think[:2000]}\n" + "Wait, let me recompute that step once more.\n" * 400 + "</think>\n\n$\\boxed{0}$"
    elif kind == "nobox":
        completion = f"<think>\n{think}\n</think>\n\nThe answer is {rng.choice(right)}."
    else:
        completion, teacher, answer = "Here is a short direct answer. " + rng.choice(pool), "deepseek-v3", None
    return {
        "id": f"{prompt_id}/{sample}", "prompt_id": prompt_id, "sample": sample, "problem": problem, "answer": answer,
        "source": "synthetic", "messages": [{"role": "user", "content": f"{problem}\n{SUFFIX}"}],
        "completion": completion, "finish_reason": finish, "prompt_tokens": 60, "completion_tokens": tokens,
        "teacher": teacher, "model": "deepseek-ai/DeepSeek-R1", "kind": kind,
    }


def synthesize(n: int, out: Path, seed: int = 0) -> list[dict]:
    """A generate-style directory (traces/ shards + manifest) of n traces; returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.core.manifest import write_manifest
    from distill.core.schema import TRACE

    rng = random.Random(seed)
    table = read_table()
    pick_gold, pool = gold_picker(rng), paragraphs(rng, 400)
    rows = []
    for i in range(math.ceil(n / 4)):
        gold = pick_gold()
        problem = f"Problem {i}: let $a_{{{i}}}$ be defined by {rng.choice(pool)[:160]} Find the value."
        rows += [make_row(rng, pool, table, f"syn-{i:06d}", s, gold, problem) for s in range(4)]
    rows = rows[:n]
    schema = pa.schema(list(TRACE) + [("kind", pa.string())])
    (out / "traces").mkdir(parents=True)
    for index, start in enumerate(range(0, n, 1000)):  # the shard layout distill generate writes
        table = pa.Table.from_pylist(rows[start : start + 1000], schema=schema)
        pq.write_table(table, out / "traces" / f"traces-{index:05d}.parquet", compression="zstd")
    config = {"prompts": "synthetic", "num_samples": 4, "resolved": {"teacher": "deepseek-r1",
              "model": "deepseek-ai/DeepSeek-R1", "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768,
              "prompt_suffix": SUFFIX, "system_prompt": None, "seed": seed}}
    write_manifest(out, "generate", config, counts={"rows": n})
    return rows


def run_ours(gen: Path, out: Path, eval_data_dir: str | None, num_proc: int | None,
             overrides: tuple[str, ...] = ()) -> float:
    from distill.core.config import load_config
    from distill.curate import curate
    from distill.curate.config import CurateConfig

    cfg = load_config(CurateConfig, REPO / "recipes" / "curate" / "r1_math.yaml", overrides,
                      values={"src": str(gen), "out": str(out), "eval_data_dir": eval_data_dir, "num_proc": num_proc})
    start = time.perf_counter()
    curate(cfg)
    return time.perf_counter() - start


def run_baseline(rows: list[dict]) -> tuple[list[bool], list[str | None], float]:
    """math-verify on every trace, one process: parse(completion), parse(gold), verify. Rows without a
    reference (non-reasoning) count as not graded (False)."""
    from math_verify import parse, verify

    verdicts, answers = [], []
    start = time.perf_counter()
    for row in rows:
        if row["answer"] is None:
            verdicts.append(False)
            answers.append(None)
            continue
        pred = parse(row["completion"])
        gold = parse(f"${row['answer']}$")
        answers.append(str(pred[1]) if len(pred) > 1 else None)
        verdicts.append(bool(pred and gold and verify(gold, pred)))
    return verdicts, answers, time.perf_counter() - start


def explain(row: dict, ours, their_answer: str | None, table: dict) -> tuple[str, str]:
    """(cause, explanation with who is right) of a verdict disagreement."""
    if "</think>" not in row["completion"]:
        return "unfinished reasoning", (
            f"ours right (R1 protocol): the trace never closed </think>, so it has no final answer; the baseline "
            f"graded {their_answer!r}, a box from inside the unfinished reasoning")
    if ours.answer is None:
        return "no box after </think>", f"ours right: nothing is boxed after </think>; the baseline read {their_answer!r}"
    verdict = dict(table.get(row["answer"], [])).get(ours.answer)
    if verdict is None:
        return "not in the table", f"{ours.answer!r} vs gold {row['answer']!r}: not in the grader table (add it)"
    who = "ours" if verdict == ours.correct else "baseline"
    return f"equivalence, {who} right per the table", (
        f"{who} right per the grader table: {ours.answer!r} vs {row['answer']!r} is "
        f"{'equal' if verdict else 'different'}")


def compare(rows, verdicts, answers) -> list[tuple[str, str]]:
    """(cause, line) for every row where our verdict and the baseline's differ."""
    from distill.grading.answers import grade_many

    table = read_table()
    graded = [r for r in rows if r["answer"] is not None]
    ours = iter(grade_many([r["completion"] for r in graded], [r["answer"] for r in graded]))
    out = []
    for row, theirs, their_answer in zip(rows, verdicts, answers, strict=True):
        if row["answer"] is None:
            continue
        mine = next(ours)
        if mine.correct != theirs:
            cause, why = explain(row, mine, their_answer, table)
            out.append((cause, f"{row['id']} ({row['kind']}): ours={mine.correct} baseline={theirs}: {why}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="traces to synthesise and curate")
    parser.add_argument("--baseline-n", type=int, default=1000, help="rows (spread over the same traces) for the baseline")
    parser.add_argument("--eval-data-dir", default=str(REPO.parent / "shared" / "data")
                        if (REPO.parent / "shared" / "data" / "math500.jsonl").exists() else None)
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs")
    parser.add_argument("--selection", action="store_true", help="instead of the baseline: ours without pass_rate "
                        "and select, then with pass_rate.max=0.75 and select.budget=n/4 hardest, on the same traces")
    args = parser.parse_args()
    if args.selection:
        return compare_selection(args)

    work = Path(tempfile.mkdtemp(prefix="curate_bench_"))
    try:
        t0 = time.perf_counter()
        rows = synthesize(args.n, work / "gen")
        print(f"synthesised {len(rows):,} traces ({sum(len(r['completion']) for r in rows) / 1e6:,.0f} MB of text, "
              f"{Counter(r['kind'] for r in rows)}) in {time.perf_counter() - t0:.1f}s", flush=True)
        ours_s = run_ours(work / "gen", work / "data", args.eval_data_dir, args.num_proc)
        step = max(1, len(rows) // max(1, args.baseline_n))
        subset = rows[::step][: args.baseline_n]
        verdicts, answers, base_s = run_baseline(subset)
        lines = compare(subset, verdicts, answers)
        causes = Counter(cause for cause, _ in lines)
        print(f"\n{len(lines)} verdict disagreements on {len(subset):,} rows (every one printed):")
        for _, line in lines:
            print("  " + line)
        print(f"by cause: {dict(causes)}")
        ours_per_s, base_per_s = len(rows) / ours_s, len(subset) / base_s
        print(json.dumps({"ours_per_s": round(ours_per_s, 1), "baseline_per_s": round(base_per_s, 1),
                          "ratio": round(ours_per_s / base_per_s, 1), "disagreements": len(lines), "n": len(rows),
                          "baseline_n": len(subset), "ours_seconds": round(ours_s, 2),
                          "baseline_seconds": round(base_s, 2)}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def compare_selection(args) -> None:
    """What pass_rate and the select step cost: the same traces curated without them (the chain minus pass_rate)
    and with them, one after the other; the rates are traces per second of the whole stage."""
    from distill.curate.filters import DEFAULT_CHAIN

    work = Path(tempfile.mkdtemp(prefix="curate_bench_"))
    try:
        synthesize(args.n, work / "gen")
        chain = "[" + ",".join(f for f in DEFAULT_CHAIN if f != "pass_rate") + "]"
        # "with" runs first: the second run of a process starts warm (imports, judges, file cache), so the
        # cost printed is an upper bound
        with_ = run_ours(work / "gen", work / "with", args.eval_data_dir, args.num_proc,
                         ("pass_rate.max=0.75", f"select.budget={args.n // 4}", "select.by=hardest"))
        without = run_ours(work / "gen", work / "without", args.eval_data_dir, args.num_proc, (f"filters={chain}",))
        print(json.dumps({"n": args.n, "without_per_s": round(args.n / without, 1), "with_per_s": round(args.n / with_, 1),
                          "cost": f"{100 * (with_ / without - 1):+.1f}% time"}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
