"""Resume inside a task (distill.eval.journal): a `distill eval` stopped by SIGTERM in the middle of a task keeps
the samples it finished, and the re-run generates only the rest and ends with exactly the samples and scores of
an unbroken run with the same seed. The real CLI on a random tiny model sampling at T 0.6 (every sample
differs, so equality means something), with chunks of 2 samples so that the stop lands mid-task."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, run_cli

ARGS = ["--tasks", "math500", "--backend", "hf", "--limit", "6", "--samples", "4", "--max-tokens", "48",
        "--set", "journal_chunk=2", "--batch-size", "2", "--reasoning", "on"]


def samples(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "samples" / "math500.jsonl").read_text().splitlines()]
    return sorted((r["id"], r["sample"], r["response"], r["tokens"], r["correct"]) for r in rows)


def test_a_task_stopped_in_the_middle_resumes_to_the_samples_of_an_unbroken_run(tiny_model, shared_data, tmp_path):
    common = ["eval", "--model", str(tiny_model), "--data-dir", str(shared_data), *ARGS]
    unbroken = run_cli(*common, "--out", tmp_path / "unbroken")
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    assert not (tmp_path / "unbroken" / ".journal").exists()  # a saved task leaves no journal behind

    out = tmp_path / "broken"
    journal = out / ".journal" / "math500.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "distill", *common, "--out", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 1 + 4:  # header + two chunks
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    kept = len(journal.read_text().splitlines()) - 1
    assert 4 <= kept < 24, kept  # stopped in the middle of the task, with finished samples on disk
    assert not (out / "samples" / "math500.jsonl").exists()

    resumed = run_cli(*common, "--out", out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "in its journal" in resumed.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["math500"]["resumed_samples"] >= kept - 1  # a chunk the stop cut is done again
    assert samples(out) == samples(tmp_path / "unbroken")
    before = json.loads((tmp_path / "unbroken" / "results.json").read_text())["tasks"]["math500"]
    assert results["tasks"]["math500"]["pass@1"] == before["pass@1"]
    assert not journal.exists()


def test_a_journal_of_another_protocol_is_not_used(tiny_model, shared_data, tmp_path):
    from distill.eval.journal import SampleJournal

    path = tmp_path / ".journal" / "math500.jsonl"
    old = SampleJournal(path, {"seed": 1})
    old.add([("k1", "text", 3)])
    path.write_text(path.read_text() + '{"key": "k2", "te')  # the line a kill cut short
    again = SampleJournal(path, {"seed": 1})
    assert again.get("k1") == ("text", 3) and again.get("k2") is None
    other = SampleJournal(path, {"seed": 2})
    assert other.get("k1") is None and not path.exists()
