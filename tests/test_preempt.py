"""SIGTERM is a request to stop: each stage, run as a real subprocess and signalled mid-run, commits what it
finished, says so in its manifest, exits 143, and its re-run ends with exactly the result of a run never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from distill.core.manifest import read_manifest
from distill.core.shards import read_shards

STUB_COMPLETION = "<think>\nLet me add the numbers carefully. 2 + 3 = 5.\n</think>\n\nThe answer is $\\boxed{5}$."


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i:03d}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(n)))
    return path


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distill", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120, what: str = "the condition") -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read()[-3000:]}")
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def terminate(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, float, str, str]:
    """SIGTERM, then wait: (exit status, seconds it took, stdout, stderr)."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, time.monotonic() - sent, out, err


def server_stats(base_url: str) -> dict[str, int]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as resp:
        return json.loads(resp.read())


def journal_lines(out: Path) -> int:
    journal = out / "traces" / ".traces.journal.jsonl"
    return journal.read_text().count("\n") if journal.exists() else 0


# ---------------------------------------------------------------- generate


def stub_generate(prompts: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["generate", "--prompts", prompts, "--out", out, "--backend", "openai", "--model", "test-teacher",
            "--base-url", url, "--concurrency", "4", "--set", "shard_rows=100000", *extra]


def test_generate_sigterm_commits_finished_rows_and_resumes_to_the_full_set(tmp_path, stub_server):
    url = stub_server("--delay", "0.2")
    prompts, out = write_prompts(tmp_path / "p.jsonl", 200), tmp_path / "gen"
    proc = start(*stub_generate(prompts, out, url))
    wait_for(lambda: journal_lines(out) >= 12, proc, what="12 journaled rows")
    status, took, stdout, stderr = terminate(proc)
    assert status == 143, stderr[-2000:]
    assert took < 30, f"exited {took:.1f} s after SIGTERM; the grace is 30 s"
    assert "SIGTERM received" in stderr and "re-run the same command" in stderr
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted"
    assert not (out / "traces" / ".traces.journal.jsonl").exists()  # everything finished is in a shard
    ids = read_shards(out / "traces").column("id").to_pylist()
    assert 12 <= len(ids) < 200 and len(set(ids)) == len(ids)
    assert manifest["counts"]["rows"] == len(ids) and manifest["counts"]["rows_missing"] == 200 - len(ids)
    assert "interrupted" in stdout  # the summary is printed on the way out

    res = run_cli(*stub_generate(prompts, out, url))
    assert res.returncode == 0, res.stderr[-2000:]
    table = read_shards(out / "traces")
    assert sorted(table.column("id").to_pylist()) == [f"q{i:03d}/0" for i in range(200)]  # none lost, none twice
    assert set(table.column("completion").to_pylist()) == {STUB_COMPLETION}
    assert read_manifest(out)["status"] == "complete"


def test_generate_gives_up_on_requests_in_flight_when_the_grace_is_spent(tmp_path, stub_server):
    url = stub_server("--faults", "timeout", "--hang", "120")  # no request finishes within the grace
    prompts, out = write_prompts(tmp_path / "p.jsonl", 20), tmp_path / "gen"
    proc = start(*stub_generate(prompts, out, url, "--stop-grace", "4"))
    wait_for(lambda: server_stats(url).get("timeout", 0) >= 4, proc, what="4 requests at the server")
    status, took, _, stderr = terminate(proc)
    assert status == 143, stderr[-2000:]
    # it gave up: the hung requests would hold it 120 s; the margin over the grace is for a loaded machine's
    # interpreter teardown, not a speed claim
    assert took < 4 + 20, f"exited {took:.1f} s after SIGTERM with --stop-grace 4"
    assert "grace of" in stderr and "left for the re-run" in stderr, stderr
    assert read_manifest(out)["status"] == "interrupted" and read_manifest(out)["counts"]["rows"] == 0


# ---------------------------------------------------------------- sft


def sft_args(model: Path, data: Path, out: Path) -> list[str]:
    from test_sft import TINY

    return ["sft", TINY, "--set", f"model.name={model}", "--set", "model.init=pretrained", "--set", "model.tokenizer=null",
            "--set", "model.config={}", "--set", f"datasets.0.path={data}", "--output-dir", out,
            "--set", "sft.max_steps=16", "--set", "sft.save_steps=4", "--set", "sft.logging_steps=1"]


def losses(run: Path, step: int) -> dict[int, float]:
    state = json.loads((run / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


@pytest.mark.slow
def test_sft_sigterm_saves_the_current_step_and_the_resumed_run_matches_an_unbroken_one(tiny_model, tmp_path):
    from test_sft import make_curate_dir

    data = make_curate_dir(tmp_path / "curate", 120)
    env = {"OMP_NUM_THREADS": "1"}
    unbroken = run_cli(*sft_args(tiny_model, data, tmp_path / "unbroken"), env=env)
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]

    out = tmp_path / "stopped"
    proc = start(*sft_args(tiny_model, data, out), env=env)
    wait_for(lambda: (out / "checkpoint-4" / "trainer_state.json").exists(), proc, timeout=300, what="checkpoint-4")
    status, _, _, stderr = terminate(proc, timeout=120)
    assert status == 143, stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted"
    step = manifest["counts"]["steps"]
    assert 4 <= step < 16, f"stopped at step {step}"
    assert (out / f"checkpoint-{step}" / "trainer_state.json").exists()  # saved at the step it stopped at
    assert not (out / "model.safetensors").exists()

    resumed = run_cli(*sft_args(tiny_model, data, out), env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {out / f'checkpoint-{step}'}" in resumed.stderr
    assert read_manifest(out)["status"] == "complete" and read_manifest(out)["counts"]["steps"] == 16
    want, got = losses(tmp_path / "unbroken", 16), losses(out, 16)
    assert sorted(got) == list(range(1, 17))  # every step once
    assert all(abs(got[s] - want[s]) <= 1e-6 for s in want), {s: (want[s], got[s]) for s in want if got[s] != want[s]}


# ---------------------------------------------------------------- curate


@pytest.mark.slow
def test_curate_sigterm_stops_after_the_units_in_hand_and_resumes_to_the_same_dataset(tmp_path, shared_data):
    from test_curate import curate_args, outcome, read_data, tiny_rows, write_jsonl

    base = tiny_rows(shared_data)
    rows = [{**r, "id": f"{r['id']}-{n}", "prompt_id": f"{r['prompt_id']}-{n}"} for n in range(5) for r in base]
    src = write_jsonl(rows, tmp_path / "traces.jsonl")
    reference = tmp_path / "unbroken"
    assert run_cli(*curate_args(src, reference, shared_data, "--num-proc", "2")).returncode == 0

    out = tmp_path / "out"
    args = curate_args(src, out, shared_data, "--num-proc", "2")
    proc = start(*args)
    wait_for(lambda: len(list((out / ".curate").glob("unit-*.json"))) >= 3, proc, what="3 finished units")
    status, _, _, stderr = terminate(proc)
    assert status == 143, stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted" and not (out / "data").exists()
    done = manifest["counts"]["units_done"]
    assert 3 <= done < manifest["counts"]["units"]
    assert len(list((out / ".curate").glob("unit-*.json"))) >= done  # units running at the signal finished too

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "curation_report.json").read_text())["units"]["resumed"] >= done
    assert outcome(out) == outcome(reference)
    assert read_data(out) == read_data(reference)


# ---------------------------------------------------------------- eval


@pytest.mark.slow
def test_eval_sigterm_keeps_finished_tasks_and_the_resumed_run_matches_an_unbroken_one(tmp_path, tiny_model,
                                                                                        shared_data):
    def args(out: Path) -> list[str]:
        return ["eval", "--model", tiny_model, "--tasks", "aime24,math500", "--backend", "hf", "--limit", "2",
                # 48 tokens: math500 takes long enough that the poll sees aime24 done alone (8 left a 50 ms window)
                "--samples", "2", "--max-tokens", "48", "--data-dir", shared_data, "--out", out]

    def tasks_done(out: Path) -> set[str]:
        path = out / "results.json"
        return set(json.loads(path.read_text())["tasks"]) if path.exists() else set()

    unbroken = run_cli(*args(tmp_path / "unbroken"))
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]
    out = tmp_path / "eval"
    proc = start(*args(out))
    wait_for(lambda: tasks_done(out) == {"aime24"}, proc, what="the first task")
    status, took, _, stderr = terminate(proc)
    assert status == 143, stderr[-3000:]
    assert took < 60, f"took {took:.1f} s to stop"  # a hang guard: it stops within the sample in hand
    assert read_manifest(out)["status"] == "interrupted" and tasks_done(out) == {"aime24"}
    assert "math500" in stderr.splitlines()[-1]  # what the re-run will do

    resumed = run_cli(*args(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "aime24: already evaluated" in resumed.stderr
    assert read_manifest(out)["status"] == "complete"
    for task in ("aime24", "math500"):
        assert (out / "samples" / f"{task}.jsonl").read_text() == (tmp_path / "unbroken" / "samples" / f"{task}.jsonl").read_text()


# ---------------------------------------------------------------- the Slurm array script's trap


def test_generate_array_script_forwards_sigterm_and_requeues(tmp_path, stub_server):
    """recipes/slurm/generate_array.sbatch under stand-ins for srun and scontrol: SIGTERM to the batch shell
    (what --signal=B:TERM@120 sends) reaches distill, which commits and exits 143, and the task is requeued."""
    bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    bin_dir.mkdir()
    scripts = {
        "srun": 'while [[ "$1" == --* ]]; do shift; done\nexec "$@"\n',  # srun passes signals on; exec does too
        "distill": f'exec {sys.executable} -m distill "$@"\n',
        "scontrol": f'echo "$@" >> {tmp_path / "scontrol.log"}\n',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(0o755)
    url = stub_server("--delay", "0.2")
    prompts, out = write_prompts(tmp_path / "p.jsonl", 400), tmp_path / "gen"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO), "VENV": str(venv),
           "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_JOB_ID": "4242",
           "SLURM_GPUS_ON_NODE": "1"}
    proc = subprocess.Popen(["bash", str(REPO / "recipes" / "slurm" / "generate_array.sbatch"), str(prompts), str(out),
                             "--backend", "openai", "--base-url", url, "--model", "test-teacher", "--concurrency", "4"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out / "parts" / "part-00001-of-00002" / "traces" / ".traces.journal.jsonl"
    wait_for(lambda: journal.exists() and journal.read_text().count("\n") >= 4, proc, what="4 journaled rows")
    status, _, stdout, stderr = terminate(proc)
    assert status == 143, stdout[-2000:] + stderr[-2000:]
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    part = read_manifest(out / "parts" / "part-00001-of-00002")
    assert part["status"] == "interrupted" and part["counts"]["rows"] >= 4
    assert read_manifest(out)["parts"]["1"]["status"] == "interrupted"
    events = [json.loads(line) for line in (out / "logs" / "part-1.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "summary"
