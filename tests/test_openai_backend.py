"""The openai backend against real servers: `transformers serve` on a tiny model, and a local server that
injects 500s, 429s, timeouts and dropped connections before answering; kill/resume through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO, TEACHER_REPLY, finished_ids, free_port, run_cli

from distill.core.manifest import read_manifest
from distill.core.shards import read_shards
from distill.core.stage_dirs import shard_paths
from distill.generate.backends import join_completion
from distill.generate.backends.openai import normalize_base_url

STUB_COMPLETION = "<think>\nLet me add the numbers carefully. 2 + 3 = 5.\n</think>\n\nThe answer is $\\boxed{5}$."


def write_prompts(path, n):
    path.write_text("".join(json.dumps({"id": f"q{i:03d}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(n)))
    return path


def gen(prompts, out, *urls, extra=()):
    base = [a for url in urls for a in ("--base-url", url)]
    return run_cli("generate", "--prompts", prompts, "--out", out, "--backend", "openai", "--model", "test-teacher",
                   *base, "--set", "retry_backoff_s=0.05", *extra)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


# ---------------------------------------------------------------- a real server: transformers serve


@pytest.fixture(scope="module")
def transformers_server(parrot_model):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    exe = os.path.join(os.path.dirname(sys.executable), "transformers")
    proc = subprocess.Popen([exe, "serve", "--port", str(port), "--device", "cpu", str(parrot_model)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if get_json(url + "/health").get("status") == "ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("transformers serve did not start")
    yield url + "/v1"
    proc.terminate()
    proc.wait(timeout=30)


def test_transformers_serve_reasoning_is_reassembled(tmp_path, parrot_model, transformers_server):
    body = json.dumps({"model": str(parrot_model), "max_tokens": 64,
                       "messages": [{"role": "user", "content": "What is 2 + 3?"}]}).encode()
    req = urllib.request.Request(transformers_server + "/chat/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        message = json.loads(resp.read())["choices"][0]["message"]
    assert message["reasoning_content"] and "<think>" not in message["content"]  # the server splits it

    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "openai", "--base-url",
                  transformers_server, "--model", parrot_model, "-k", "2", "--max-tokens", "64")
    assert res.returncode == 0, res.stderr
    rows = read_shards(tmp_path / "gen" / "traces").to_pylist()
    assert len(rows) == 6
    for r in rows:
        assert r["completion"] == TEACHER_REPLY and r["finish_reason"] == "stop"
        assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0


# ---------------------------------------------------------------- a fault-injecting server


def test_retries_500_429_timeouts_and_dropped_connections(tmp_path, stub_server):
    # the hung request outlasts the client's timeout by far, and a real answer stays far inside it even on a
    # loaded machine (a 200 slower than the timeout would be retried and break the exact counts below)
    url = stub_server("--faults", "500,429,timeout,drop,503", "--hang", "30")
    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    res = gen(prompts, tmp_path / "gen", url, extra=["-k", "2", "--set", "request_timeout=5", "--set", "max_retries=6"])
    assert res.returncode == 0, res.stderr
    rows = read_shards(tmp_path / "gen" / "traces").to_pylist()
    assert sorted(r["id"] for r in rows) == [f"q{i:03d}/{s}" for i in range(4) for s in range(2)]
    assert all(r["completion"] == STUB_COMPLETION and r["finish_reason"] == "stop" for r in rows)
    stats = get_json(url.replace("/v1", "/stats"))
    assert {k: stats[k] for k in ("500", "429", "timeout", "drop", "503", "200")} == dict.fromkeys(
        ("500", "429", "timeout", "drop", "503", "200"), 8)
    assert read_manifest(tmp_path / "gen")["counts"]["this_run"]["retries"] == 40


@pytest.mark.parametrize("mode", ["split", "inline", "prefilled"])
def test_every_reasoning_format_is_stored_as_one_think_block(tmp_path, stub_server, mode):
    url = stub_server("--reasoning", mode)
    assert gen(write_prompts(tmp_path / "p.jsonl", 2), tmp_path / "gen", url).returncode == 0
    assert {r["completion"] for r in read_shards(tmp_path / "gen" / "traces").to_pylist()} == {STUB_COMPLETION}


def test_load_is_balanced_and_a_dead_server_is_skipped(tmp_path, stub_server):
    a, b = stub_server("--delay", "0.02"), stub_server("--delay", "0.02")
    # dead for the whole test: a port held bound but never listening refuses every connection, where a port
    # merely found free could be taken by another process meanwhile
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{holder.getsockname()[1]}/v1"
    with holder:
        res = gen(write_prompts(tmp_path / "p.jsonl", 40), tmp_path / "gen", a, b, dead,
                  extra=["--concurrency", "8"])
    assert res.returncode == 0, res.stderr
    assert read_shards(tmp_path / "gen" / "traces").num_rows == 40
    served = [get_json(u.replace("/v1", "/stats")).get("200", 0) for u in (a, b)]
    # least-in-flight balancing over 8 concurrent requests: the two live servers differ by at most that many
    assert sum(served) == 40 and abs(served[0] - served[1]) <= 8, served


def test_bad_request_is_an_error_row_and_the_rest_go_on(tmp_path, stub_server):
    url = stub_server()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "ok", "problem": "What is 1 + 1?"}\n{"id": "bad", "problem": "BAD prompt"}\n')
    res = gen(prompts, tmp_path / "gen", url)
    assert res.returncode == 0, res.stderr
    rows = {r["id"]: r for r in read_shards(tmp_path / "gen" / "traces").to_pylist()}
    assert rows["ok/0"]["finish_reason"] == "stop"
    assert rows["bad/0"]["finish_reason"] == "error" and rows["bad/0"]["completion"] == ""
    # the server's reason is said as it happens, counted in the manifest and named in the summary
    assert "bad/0: " in res.stderr and "400" in res.stderr and "written as an error row" in res.stderr
    [(message, count)] = read_manifest(tmp_path / "gen")["counts"]["this_run"]["error_messages"].items()
    assert count == 1 and "400" in message and "most common error" in res.stdout


def test_rejected_api_key_stops_the_run_with_one_line(tmp_path, stub_server, monkeypatch):
    url = stub_server("--require-key", "right")
    res = gen(write_prompts(tmp_path / "p.jsonl", 3), tmp_path / "gen", url,
              extra=["--api-key-env", "DISTILL_TEST_KEY"])
    assert res.returncode == 2 and "DISTILL_TEST_KEY is not set" in res.stderr
    monkeypatch.setenv("DISTILL_TEST_KEY", "wrong")
    res = gen(write_prompts(tmp_path / "p.jsonl", 3), tmp_path / "gen", url, extra=["--api-key-env", "DISTILL_TEST_KEY"])
    assert res.returncode == 2 and "401" in res.stderr and "Traceback" not in res.stderr
    assert read_shards(tmp_path / "gen" / "traces").num_rows == 0


def test_requests_that_exhaust_retries_are_left_for_the_rerun(tmp_path, stub_server):
    flaky = stub_server("--faults", "500,500,500,500")
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    res = gen(prompts, tmp_path / "gen", flaky, extra=["--set", "max_retries=1"])
    assert res.returncode == 0 and "re-run the same command" in res.stdout
    manifest = read_manifest(tmp_path / "gen")
    assert manifest["status"] == "incomplete" and manifest["counts"]["rows_missing"] == 3
    healthy = stub_server()
    assert gen(prompts, tmp_path / "gen", healthy).returncode == 0
    assert read_manifest(tmp_path / "gen")["status"] == "complete"
    assert read_shards(tmp_path / "gen" / "traces").num_rows == 3


# ---------------------------------------------------------------- SIGKILL mid-run, then resume


@pytest.mark.parametrize("kill_after_rows", [5, 60])
def test_sigkill_mid_run_then_resume_gives_every_id_exactly_once(tmp_path, stub_server, kill_after_rows):
    url = stub_server("--delay", "0.03")
    prompts = write_prompts(tmp_path / "p.jsonl", 60)
    out = tmp_path / "gen"
    cmd = [sys.executable, "-m", "distill", "generate", "--prompts", str(prompts), "--out", str(out), "--backend",
           "openai", "--model", "test-teacher", "--base-url", url, "-k", "2", "--concurrency", "4",
           "--set", "shard_rows=16"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and rows_on_disk(out) < kill_after_rows:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = finished_ids(out)  # in shards or complete journal lines at the moment of the kill
    assert 0 < len(finished) < 120  # really killed mid-run
    for shard in shard_paths(out / "traces"):
        assert shard.stat().st_size > 0
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    ids = read_shards(out / "traces").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 120
    assert finished <= set(ids)  # nothing finished was lost
    assert read_manifest(out)["status"] == "complete"


def rows_on_disk(out):
    journal = out / "traces" / ".traces.journal.jsonl"
    n = journal.read_text().count("\n") if journal.exists() else 0
    return n + sum(1 for _ in shard_paths(out / "traces")) * 16


# ---------------------------------------------------------------- pure helpers


def test_join_completion_forms():
    assert join_completion("ans", "why") == "<think>\nwhy\n</think>\n\nans"
    assert join_completion("why\n</think>\n\nans") == "<think>\nwhy\n</think>\n\nans"
    assert join_completion("<think>\nwhy\n</think>\n\nans") == "<think>\nwhy\n</think>\n\nans"
    assert join_completion("", "cut off mid tho", "length") == "<think>\ncut off mid tho"  # no invented </think>
    assert join_completion("plain answer") == "plain answer"


def test_base_url_forms():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://openrouter.ai/api/v1") == "https://openrouter.ai/api/v1"
