"""How many completions/s `distill generate --backend openai` writes to shards when the server is instant.

    .venv/bin/python benchmarks/generate_client.py --n 20000

The server is tests/openai_server.py in its own process (answers at once, reasoning split out as vLLM does), so
the figure is the client's ceiling: request fan-out, parsing, <think> re-assembly, journaling and parquet
commits. Beside it, in the same run, a naive sequential client (the `openai` SDK in a loop, rows kept in memory
and written once at the end, as a typical script does) on the same server. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def write_prompts(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"b{i:07d}", "problem": f"What is {i} + {i % 97}?", "answer": str(i + i % 97)}) + "\n")
    return path


def run_ours(url: str, prompts: Path, out: Path, concurrency: int) -> float:
    from distill.core.shards import read_shards
    from distill.generate import generate
    from distill.generate.config import GenerateConfig

    cfg = GenerateConfig(prompts=str(prompts), out=str(out), backend="openai", model="test-teacher", base_url=[url],
                         concurrency=concurrency, shard_rows=5000)
    start = time.perf_counter()
    generate(cfg)
    seconds = time.perf_counter() - start
    rows = read_shards(out / "traces", columns=["id"]).num_rows
    assert rows == sum(1 for _ in prompts.open()), f"only {rows} rows written"
    return rows / seconds


def run_naive(url: str, prompts: Path, out: Path, n: int) -> float:
    """What a hand-written script does: one request after the other, then one parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="none")
    rows = [json.loads(line) for line in prompts.open()][:n]
    start = time.perf_counter()
    done = []
    for row in rows:
        resp = client.chat.completions.create(model="test-teacher", max_tokens=32768, temperature=0.6, top_p=0.95,
                                              messages=[{"role": "user", "content": row["problem"]}])
        msg = resp.choices[0].message
        reasoning = getattr(msg, "reasoning_content", None) or ""
        done.append({"id": row["id"], "completion": f"<think>\n{reasoning}\n</think>\n\n{msg.content}"})
    pq.write_table(pa.Table.from_pylist(done), out / "naive.parquet")
    return len(done) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="completions for our client")
    p.add_argument("--baseline-n", type=int, default=2000, help="completions for the (slow) naive client")
    p.add_argument("--concurrency", type=int, default=256)
    a = p.parse_args()
    os.environ.setdefault("DISTILL_PROGRESS", "0")

    from conftest import start_stub_server

    server, url = start_stub_server("--reasoning", "split")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            prompts = write_prompts(tmp / "prompts.jsonl", a.n)
            ours = run_ours(url, prompts, tmp / "ours", a.concurrency)
            naive = run_naive(url, prompts, tmp, min(a.n, a.baseline_n))
    finally:
        server.kill()
    print(f"distill generate (openai, concurrency {a.concurrency}): {ours:,.0f} completions/s written to shards")
    print(f"naive sequential openai-SDK client:                 {naive:,.0f} completions/s")
    print(json.dumps({"n": a.n, "ours_per_s": round(ours, 1), "baseline_per_s": round(naive, 1),
                      "ratio": round(ours / naive, 2)}))


if __name__ == "__main__":
    main()
