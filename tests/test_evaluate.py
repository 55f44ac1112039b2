"""`distill eval` end to end: the real CLI on the tiny model, the openai backend against a live HTTP server,
resuming, lineage, the report, and one-line errors for bad input."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO, run_cli, send_json

from distill.core.manifest import read_manifest, write_manifest
from distill.core.readers import iter_jsonl

STAGES = ("aime24", "aime25", "math500")


def _student_with_lineage(tmp_path: Path, tiny_model: Path) -> Path:
    """A copy of the tiny model that looks like an sft output: manifests back through curate and generate."""
    gen, data, model = tmp_path / "gen", tmp_path / "data", tmp_path / "sft"
    write_manifest(gen, "generate", config={"teacher": "deepseek-r1", "resolved": {"model": "deepseek-ai/DeepSeek-R1"}})
    write_manifest(data, "curate", config={"traces": str(gen)}, inputs=[gen], counts={"rows": 10})
    shutil.copytree(tiny_model, model)
    write_manifest(model, "sft", config={"student": "Qwen/Qwen2.5-Math-1.5B", "recipe": "qwen1_5b"}, inputs=[data])
    return model


def test_eval_end_to_end_on_the_tiny_model(tmp_path, tiny_model, shared_data):
    model, out = _student_with_lineage(tmp_path, tiny_model), tmp_path / "eval"
    proc = run_cli("eval", "--model", model, "--tasks", "aime,math500", "--backend", "hf", "--limit", "2",
                   "--max-tokens", "8", "--samples", "2", "--data-dir", shared_data, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == set(STAGES) and results["backend"] == "hf"
    for name in STAGES:
        task = results["tasks"][name]
        assert (task["k"], task["n"], task["samples"]) == (2, 2, 4)
        for key in ("pass@1", "pass@1_stderr", "cons@k", "pass@k", "truncated", "mean_tokens"):
            assert task[key] is not None, (name, key)
        rows = list(iter_jsonl(out / "samples" / f"{name}.jsonl"))
        assert len(rows) == 4 and [r["sample"] for r in rows] == [0, 1, 0, 1]
        assert {"id", "response", "answer", "correct", "truncated", "tokens", "prompt"} <= set(rows[0])
        assert all(1 <= r["tokens"] <= 8 for r in rows)  # as generated, within the budget
        assert all(r["prompt"].endswith("<|im_start|>assistant\n<think>\n") for r in rows)
        # the random model never closes its think block: truncated, hence wrong, whatever it wrote
        assert all(r["correct"] is False for r in rows if r["truncated"])
        assert task["truncated"] == sum(r["truncated"] for r in rows) / 4
    assert results["protocol"]["temperature"] == 0.6 and results["protocol"]["max_tokens"] == 8
    assert results["published"]["student"]["name"] == "DeepSeek-R1-Distill-Qwen-1.5B"

    manifest = read_manifest(out)
    assert manifest["stage"] == "eval"
    assert [e["stage"] for e in manifest["lineage"]] == ["sft", "curate", "generate"]
    report = (out / "report.md").read_text()
    assert "DeepSeek-R1-Distill-Qwen-1.5B (published)" in report and "| 28.9 [1] | 79.8 [1] |" in report
    assert "not published" in report  # AIME 2025 has no R1-Distill number
    assert "recipe qwen1_5b" in report and "deepseek-r1" in report
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_model_that_answers_is_scored_exactly_and_a_rerun_resumes(tmp_path, parrot_model, capsys, monkeypatch):
    """The parrot model answers every prompt with a think block and \\boxed{5}, then EOS."""
    data = tmp_path / "data"
    data.mkdir()
    problems = [("p1", "What is 2 + 3?", "005"), ("p2", "Find the sum of all real numbers x.", "7"),
                ("p3", "A triangle has area 5. What is its area?", "5")]
    (data / "aime24.jsonl").write_text("".join(json.dumps({"id": i, "problem": p, "answer": a}) + "\n"
                                               for i, p, a in problems))
    out = tmp_path / "eval"
    args = ["eval", "--model", parrot_model, "--tasks", "aime24", "--backend", "hf", "--samples", "2",
            "--max-tokens", "64", "--data-dir", data, "--out", out]
    assert _run_in_process(capsys, *args)[0] == 0

    task = json.loads((out / "results.json").read_text())["tasks"]["aime24"]
    rows = list(iter_jsonl(out / "samples" / "aime24.jsonl"))
    assert [(r["id"], r["answer"], r["correct"]) for r in rows] == [
        ("p1", "5", True), ("p1", "5", True), ("p2", "5", False), ("p2", "5", False), ("p3", "5", True), ("p3", "5", True)]
    assert all(r["response"].endswith("\\boxed{5}$.") and not r["truncated"] for r in rows)  # stopped at EOS
    assert task["pass@1"] == pytest.approx(2 / 3) and task["cons@k"] == pytest.approx(2 / 3)
    assert task["pass@1_stderr"] == pytest.approx((1 / 3) ** 0.5 / 3 ** 0.5)  # sd of (1, 0, 1) / sqrt(3)
    assert task["truncated"] == 0 and task["hit_max_tokens"] == 0
    # the prompt prefilled <think>\n, so the model's own tokens start after it
    assert rows[0]["prompt"].endswith("<think>\n") and not rows[0]["response"].startswith("<think>")

    # the same command again: done with this protocol, nothing is regenerated
    before = (out / "samples" / "aime24.jsonl").read_bytes(), (out / "manifest.json").read_bytes()
    assert _run_in_process(capsys, *args)[0] == 0
    assert (out / "samples" / "aime24.jsonl").read_bytes() == before[0]
    assert (out / "manifest.json").read_bytes() == before[1]
    # ... nor when the model is spelled relative to another working directory
    monkeypatch.chdir(parrot_model.parent)
    relative = [a if a != parrot_model else parrot_model.name for a in args]
    code, err = _run_in_process(capsys, *relative)
    assert code == 0, err
    assert (out / "samples" / "aime24.jsonl").read_bytes() == before[0]
    monkeypatch.undo()

    # another protocol into the same OUT is refused, naming the difference and the fix ...
    shorter = [a if a != "64" else "16" for a in args]
    code, err = _run_in_process(capsys, *shorter)
    assert code == 2 and err.count("\n") == 0 and "max_tokens: 64 -> 16" in err and "--force" in err
    # ... and replaces the results with --force: 16 tokens cannot reach </think>, so every sample is wrong
    assert _run_in_process(capsys, *shorter, "--force")[0] == 0
    task = json.loads((out / "results.json").read_text())["tasks"]["aime24"]
    assert (task["pass@1"], task["truncated"], task["hit_max_tokens"]) == (0, 1, 1)


def _run_in_process(capsys, *args) -> tuple[int, str]:
    from distill.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err.strip()


def test_bad_input_gives_one_line_errors(tmp_path, tiny_model, shared_data, capsys):
    def eval_args(**given):
        opts = {"model": tiny_model, "tasks": "aime24", "backend": "hf", "limit": 1, "samples": 1, "max_tokens": 4,
                "data_dir": shared_data, "out": tmp_path / "o", **given}
        return ["eval", *(x for k, v in opts.items() if v is not None for x in (f"--{k.replace('_', '-')}", v))]

    code, err = _run_in_process(capsys, *eval_args(tasks="aime,gsm9k"))
    assert code == 2 and err.count("\n") == 0 and "unknown task 'gsm9k'" in err and "math500" in err

    # tests run offline (conftest): the hub copy cannot be fetched, and the error says what to do
    code, err = _run_in_process(capsys, *eval_args(data_dir=None))
    assert code == 2 and err.count("\n") == 0 and "pass --data-dir" in err and "HuggingFaceH4/aime_2024" in err

    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(shared_data / "aime24.jsonl", partial)
    code, err = _run_in_process(capsys, *eval_args(tasks="aime", data_dir=partial))
    assert code == 2 and err.count("\n") == 0 and "aime25.jsonl not found" in err

    code, err = _run_in_process(capsys, *eval_args(model=tmp_path / "no-such-model"))
    assert code == 2 and err.count("\n") == 0 and "no-such-model' not found" in err
    code, err = _run_in_process(capsys, *eval_args(model=tmp_path / "no-such-model", data_dir=None))
    assert code == 2 and "no-such-model' not found" in err  # said before any data is looked for

    # a budget the model cannot hold would truncate prompts: refused before anything runs
    code, err = _run_in_process(capsys, *eval_args(max_tokens=5000))
    assert code == 2 and err.count("\n") == 0 and "exceeds the 4096 positions" in err
    assert re.search(r"pass --max-tokens \d+ or less", err)
    short = tmp_path / "short-model"  # 64 positions: MATH-500's longest prompt alone does not fit
    shutil.copytree(tiny_model, short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 64}))
    code, err = _run_in_process(capsys, *eval_args(model=short, tasks="math500"))
    assert code == 2 and err.count("\n") == 0 and "fills the 64 positions" in err and "--max-tokens" not in err

    code, err = _run_in_process(capsys, *eval_args(backend="openai", base_url="http://127.0.0.1:9/v1"))
    assert code == 2 and err.count("\n") == 0 and "cannot reach http://127.0.0.1:9/v1/models" in err
    assert not (tmp_path / "o" / "results.json").exists()


# ---------------------------------------------------------------- openai backend against a live server


class _ScriptedServer(ThreadingHTTPServer):
    """An OpenAI-compatible /v1/completions server whose answer depends on the request's seed, so the test
    knows every verdict: seed % 3 == 0 -> a wrong answer, seed % 7 == 0 -> cut off, else correct."""

    def __init__(self, answers: dict[str, str]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def reply(self, payload: dict) -> str:
        seed = payload["seed"]
        answer = next(a for p, a in self.answers.items() if p in payload["prompt"])
        if seed % 7 == 0:
            return f"Let me think about seed {seed} and keep going"
        boxed = str(int(answer) + 1) if seed % 3 == 0 else answer
        return f"Seed {seed}: working.\n</think>\n\nSo the answer is $\\boxed{{{boxed}}}$."


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._send({"object": "list", "data": [{"id": "tiny-served", "object": "model"}]})

    def _send(self, data: dict) -> None:
        send_json(self, data)

    def do_POST(self):  # noqa: N802 - http.server's naming
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(payload)
        text = self.server.reply(payload)
        self._send({"choices": [{"text": text, "index": 0, "finish_reason": "stop"}],
                    "usage": {"completion_tokens": len(text.split())}})


def test_openai_backend_draws_every_sample_with_its_own_seed(tmp_path, tiny_model, shared_data):
    from distill.eval import evaluate
    from distill.eval.config import EvalConfig

    problems = list(iter_jsonl(shared_data / "aime25.jsonl"))[:3]
    server = _ScriptedServer({p["problem"].strip(): p["answer"] for p in problems})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = evaluate(EvalConfig(
            model=str(tiny_model), tasks=["aime25"], backend="openai", samples=6, limit=3, max_tokens=64,
            data_dir=str(shared_data), base_url=f"http://127.0.0.1:{server.server_port}/v1", concurrency=4,
            out=str(tmp_path / "eval")))
    finally:
        server.shutdown()

    assert len(server.requests) == 18
    by_prompt: dict[str, list[int]] = {}
    for payload in server.requests:
        assert payload["prompt"].endswith("<|im_start|>assistant\n<think>\n")  # template + prefill, client side
        assert (payload["temperature"], payload["top_p"], payload["max_tokens"]) == (0.6, 0.95, 64)
        assert payload["model"] == "tiny-served" and payload["stop"] == []  # the one model the server lists
        by_prompt.setdefault(payload["prompt"], []).append(payload["seed"])
    assert len(by_prompt) == 3 and all(len(set(seeds)) == 6 for seeds in by_prompt.values())

    rows = list(iter_jsonl(out / "samples" / "aime25.jsonl"))
    seeds = [int(re.search(r"[Ss]eed (\d+)", r["response"]).group(1)) for r in rows]
    expected = [s % 7 != 0 and s % 3 != 0 for s in seeds]
    assert [r["correct"] for r in rows] == expected
    results = json.loads((out / "results.json").read_text())["tasks"]["aime25"]
    assert results["pass@1"] == pytest.approx(sum(expected) / 18)
    assert results["truncated"] == pytest.approx(sum("</think>" not in r["response"] for r in rows) / 18)
    assert [r["tokens"] for r in rows] == [len(r["response"].split()) for r in rows]  # the server's usage count


# ---------------------------------------------------------------- published numbers and lineage


def test_published_rows_are_matched_by_lineage_by_name_or_by_the_model(tmp_path):
    from distill.core.errors import DistillError
    from distill.eval.report import load_published, match_published
    from distill.eval.results import model_manifest_dir
    from distill.eval.run import EVAL_DIR

    published = load_published(EVAL_DIR / "published.yaml")
    distill_rows = [r for r in published["models"] if r["name"].startswith("DeepSeek-R1-Distill")]
    assert len(distill_rows) == 6
    for row in distill_rows:  # the paper's table: AIME 2024, MATH-500, GPQA Diamond, LiveCodeBench; no AIME 2025
        assert set(row["scores"]) == {"aime24", "math500", "gpqa_diamond", "livecodebench"} and row["base"]
        assert all(0 < s["pass@1"] < 100 and s["source"] in published["sources"] for s in row["scores"].values())

    local_copy = {"sft": {"student": "/models/Qwen2.5-Math-7B"}}
    assert match_published(published, "runs/sft/final", local_copy)["student"]["name"] == "DeepSeek-R1-Distill-Qwen-7B"
    itself = match_published(published, "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", {})
    assert itself["student"]["name"] == "DeepSeek-R1-Distill-Llama-8B" and itself["teacher"]["name"] == "DeepSeek-R1"
    chosen = match_published(published, "x", {}, "deepseek-r1-distill-qwen-32b")
    assert chosen["student"]["name"] == "DeepSeek-R1-Distill-Qwen-32B"
    newer_teacher = {"generate": {"teacher_model": "deepseek-ai/DeepSeek-R1-0528"}}
    assert match_published(published, "x", newer_teacher)["teacher"]["name"] == "DeepSeek-R1-0528"
    assert match_published(published, "my/own-model", {})["student"] is None
    with pytest.raises(DistillError, match="DeepSeek-R1-Distill-Qwen-1.5B"):
        match_published(published, "x", {}, "no-such-model")

    # an sft run's manifest next to its final/ model folder is found too
    write_manifest(tmp_path / "sft", "sft", config={"student": "Qwen/Qwen2.5-14B"})
    (tmp_path / "sft" / "final").mkdir()
    assert model_manifest_dir(str(tmp_path / "sft" / "final")) == tmp_path / "sft"
    assert model_manifest_dir(str(tmp_path / "elsewhere")) is None


def test_an_out_dir_holds_one_model(tmp_path):
    from distill.core.errors import DistillError
    from distill.eval.config import EvalConfig
    from distill.eval.run import TaskRef, plan

    ref = TaskRef("math500", "distill_math500", {"repeats": 4, "metadata": {"version": 1.0}})
    results = {"tasks": {"aime24": {"fingerprint": {"model": "model-a"}}}}
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "aime24.jsonl").write_text("{}\n")
    with pytest.raises(DistillError, match=r"another model \(model-a: aime24\)"):
        plan(results, [ref], EvalConfig(model="model-b", tasks=["math500"]), tmp_path)
    assert plan(results, [ref], EvalConfig(model="model-b", tasks=["math500"], force=True), tmp_path) == [ref]
    assert results["tasks"] == {} and not (tmp_path / "samples" / "aime24.jsonl").exists()


def test_task_dirs_add_a_family_of_your_own(tmp_path, tiny_model, capsys):
    family = tmp_path / "tasks" / "mysums"
    shutil.copytree(REPO / "eval" / "arithmetic", family, ignore=shutil.ignore_patterns("__pycache__"))
    (family / "distill_arithmetic.yaml").unlink()
    (family / "distill_mysums.yaml").write_text(
        "include: _arithmetic_yaml\ntask: distill_mysums\nmetadata: {version: 1.0, terms: 3, digits: 2, n: 5, seed: 7}\n")
    out = tmp_path / "eval"
    code, err = _run_in_process(capsys, "eval", "--model", tiny_model, "--tasks", "mysums", "--backend", "hf",
                                "--samples", "1", "--max-tokens", "4", "--out", out,
                                "--set", f"task_dirs=[{tmp_path / 'tasks'}]")
    assert code == 0, err
    rows = list(iter_jsonl(out / "samples" / "mysums.jsonl"))
    assert len(rows) == 5 and all(r["id"].startswith("sum3x2-test-") for r in rows)
    # without the folder the task is unknown, and the error lists what there is
    code, err = _run_in_process(capsys, "eval", "--model", tiny_model, "--tasks", "mysums", "--out", tmp_path / "o")
    assert code == 2 and "unknown task 'mysums'" in err and "arithmetic" in err
