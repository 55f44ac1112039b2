"""`generate --part I/N`: N concurrent runs fill one OUT with disjoint slices; a part killed with its node is
re-run alone; curate reads the complete parts (and refuses, naming them, while some are not) and gives the
dataset a single run of the same prompts gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, TEACHER_REPLY, run_cli

from distill.core.manifest import read_manifest
from distill.core.shards import read_shards
from distill.core.stage_dirs import shard_paths
from distill.generate.parts import Part, parse_part, part_of

N, K = 3, 2


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i:02d}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)})
                            + "\n" for i in range(n)))
    return path


def hf_args(prompts: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", "--prompts", prompts, "--out", out, "--backend", "transformers", "--model", "MODEL",
            "--max-tokens", "48", "--temperature", "0", "--batch-size", "1", "-k", str(K), *extra]


def start(args: list, model: Path) -> subprocess.Popen:
    args = [model if a == "MODEL" else a for a in args]
    return subprocess.Popen([sys.executable, "-m", "distill", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def part_path(out: Path, i: int) -> Path:
    return out / "parts" / Part(i, N).name


def curate(src: Path, out: Path, *extra: str):
    return run_cli("curate", src, "--out", out, "--set", "contaminated.benchmarks=[]", "--num-proc", "1", *extra)


def curated_rows(out: Path) -> list[dict]:
    table = pa.concat_tables(pq.read_table(p) for p in sorted((out / "data").glob("*.parquet")))
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def rejected(out: Path) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in pq.read_table(out / "rejected.parquet").to_pylist()}


# ---------------------------------------------------------------- the slices


def test_parts_are_disjoint_cover_everything_and_do_not_move_when_rows_are_added():
    ids = [f"p{i}/{s}" for i in range(500) for s in range(4)]
    owners = {i: part_of(i, 8) for i in ids}
    assert all(sum(Part(j, 8).holds(i) for j in range(8)) == 1 for i in ids)
    sizes = [list(owners.values()).count(j) for j in range(8)]
    assert min(sizes) > 0.8 * len(ids) / 8, sizes  # balanced
    more = [f"p{i}/{s}" for i in range(600) for s in range(6)]
    assert all(part_of(i, 8) == owners[i] for i in more if i in owners)  # more prompts or samples: no row moves


@pytest.mark.parametrize("text", ["3", "3/3", "-1/3", "a/b", "1/0"])
def test_a_malformed_part_is_a_one_line_error(text, tmp_path):
    res = run_cli("generate", "--prompts", tmp_path / "p.jsonl", "--out", tmp_path / "g", "--part", text)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--part" in res.stderr, res.stderr


# ---------------------------------------------------------------- N concurrent parts, one killed


@pytest.fixture(scope="module")
def parted(parrot_model, tmp_path_factory):
    """3 parts started at once into one OUT; part 1 is SIGKILLed mid-run; the others finish."""
    tmp = tmp_path_factory.mktemp("parts")
    prompts, out = write_prompts(tmp / "p.jsonl", 9), tmp / "gen"
    procs = {i: start(hf_args(prompts, out, "--part", f"{i}/{N}"), parrot_model) for i in range(N)}
    journal = part_path(out, 1) / "traces" / ".traces.journal.jsonl"
    deadline = time.time() + 300
    while not (journal.exists() and journal.read_text().count("\n") >= 1):
        assert procs[1].poll() is None, f"part 1 ended before it could be killed: {procs[1].stderr.read()[-2000:]}"
        assert time.time() < deadline, "part 1 wrote no row within 5 minutes"
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    results = {i: p.communicate(timeout=600) + (p.returncode,) for i, p in procs.items()}
    return prompts, out, results


@pytest.fixture(scope="module")
def completed(parted, parrot_model, tmp_path_factory):
    """A copy of `parted` whose killed part 1 was run again, alone (`parted` itself stays as the kill left it, so
    no test depends on which ran first)."""
    prompts, parted_out, _ = parted
    out = tmp_path_factory.mktemp("completed") / "gen"
    shutil.copytree(parted_out, out)
    others = {p.name: p.stat().st_mtime_ns for i in (0, 2) for p in shard_paths(part_path(out, i) / "traces")}
    res = run_cli(*[parrot_model if a == "MODEL" else a for a in hf_args(prompts, out, "--part", f"1/{N}")])
    return prompts, out, res, others


def test_the_other_parts_finish_and_the_whole_says_which_are_complete(parted):
    _, out, results = parted
    assert results[1][2] == -signal.SIGKILL
    for i in (0, 2):
        assert results[i][2] == 0, results[i][1][-2000:]
        assert "parts complete" in results[i][0]
        assert read_manifest(part_path(out, i))["status"] == "complete"
    whole = read_manifest(out)
    assert whole["num_parts"] == N and whole["status"] == "incomplete"
    assert whole["parts"]["0"]["status"] == whole["parts"]["2"]["status"] == "complete"
    assert whole["parts"]["1"]["status"] == "running"  # killed: its manifest never got further


def test_curate_refuses_unfinished_parts_unless_told(parted, tmp_path):
    _, out, _ = parted
    res = curate(out, tmp_path / "data")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "1 of 3 parts are not complete: 1/3 (running)" in res.stderr and "--allow-incomplete" in res.stderr
    assert not (tmp_path / "data").exists()
    res = curate(out, tmp_path / "some", "--allow-incomplete")
    assert res.returncode == 0, res.stderr[-2000:]
    have = {r["id"] for r in curated_rows(tmp_path / "some")} | set(rejected(tmp_path / "some"))
    done = {i for p in (0, 2) for i in read_shards(part_path(out, p) / "traces").column("id").to_pylist()}
    assert have == done


def test_changing_n_or_mixing_with_a_single_run_is_refused(parted, parrot_model, tmp_path):
    prompts, out, _ = parted
    for extra, message in ((["--part", "0/4"], "is generated in 3 parts, not 4"),
                           ([], "is generated in 3 parts; pass --part I/3")):
        res = run_cli(*[parrot_model if a == "MODEL" else a for a in hf_args(prompts, out, *extra)])
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    single = tmp_path / "single"
    assert run_cli(*[parrot_model if a == "MODEL" else a for a in hf_args(write_prompts(tmp_path / "p.jsonl", 1),
                                                                            single)]).returncode == 0
    res = run_cli(*[parrot_model if a == "MODEL" else a for a in hf_args(prompts, single, "--part", "0/3")])
    assert res.returncode == 2 and "without --part" in res.stderr, res.stderr


def test_the_killed_part_rerun_alone_completes_the_set_and_touches_no_other_part(completed):
    _, out, res, others = completed
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 / 3 (curate can start)" in res.stdout
    assert {p.name: p.stat().st_mtime_ns for i in (0, 2) for p in shard_paths(part_path(out, i) / "traces")} == others
    ids = [i for p in range(N) for i in read_shards(part_path(out, p) / "traces").column("id").to_pylist()]
    assert sorted(ids) == sorted(f"p{i:02d}/{s}" for i in range(9) for s in range(K))  # exactly N.k, none twice
    assert all(part_of(i, N) == p for p in range(N) for i in read_shards(part_path(out, p) / "traces")
               .column("id").to_pylist())
    completions = {c for p in range(N) for c in read_shards(part_path(out, p) / "traces").column("completion")
                   .to_pylist()}
    assert completions == {TEACHER_REPLY}
    whole = read_manifest(out)
    assert whole["status"] == "complete" and whole["counts"]["rows"] == 9 * K
    assert whole["config"]["resolved"]["temperature"] == 0  # the whole carries the sampling, for curate's card


# ---------------------------------------------------------------- curate of parts == curate of one run


def test_curate_of_parts_equals_curate_of_a_single_run(tmp_path):
    from distill.tasks.arithmetic import SumTask

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in SumTask().prompts("train", 60)))
    base = ["generate", "--prompts", prompts, "--teacher", "arithmetic", "-k", "3",
            "--model", "arithmetic?flaw_rate=0.2"]
    parts = [subprocess.Popen([sys.executable, "-m", "distill", *map(str, base), "--out", tmp_path / "parted",
                               "--part", f"{i}/4"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for i in range(4)]
    assert all(p.wait(timeout=300) == 0 for p in parts), [p.stderr.read()[-1000:] for p in parts]
    assert run_cli(*base, "--out", tmp_path / "single").returncode == 0
    for name in ("parted", "single"):
        res = curate(tmp_path / name, tmp_path / f"data-{name}")
        assert res.returncode == 0, res.stderr[-2000:]
    kept = curated_rows(tmp_path / "data-parted")
    assert kept == curated_rows(tmp_path / "data-single") and 0 < len(kept) < 180
    assert rejected(tmp_path / "data-parted") == rejected(tmp_path / "data-single")
    assert "duplicate" in set(rejected(tmp_path / "data-single").values())  # the set filters had work to do
    card = (tmp_path / "data-parted" / "README.md").read_text()
    assert "arithmetic" in card


def test_parse_part():
    assert parse_part(" 2 / 5 ") == Part(2, 5) and str(Part(2, 5)) == "2/5"


def test_a_rerun_of_a_complete_part_leaves_the_whole_manifest_as_it_was(completed, parrot_model):
    prompts, out, _, _ = completed
    assert read_manifest(out)["status"] == "complete"
    before = (out / "manifest.json").read_bytes()
    res = run_cli(*[parrot_model if a == "MODEL" else a for a in hf_args(prompts, out, "--part", f"0/{N}")])
    assert res.returncode == 0 and "nothing to do" in res.stderr, res.stderr[-2000:]
    assert (out / "manifest.json").read_bytes() == before  # curate holds its hash
