"""`distill demo --quick` through the real CLI: every artifact, manifests linked stage to stage, the flawed traces
dropped by their own reasons, and the trace-trained student ahead of the untrained one on held-out problems."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import REPO, env_without_command, run_cli
from test_arithmetic import classify

from distill.core.manifest import find_stage, manifest_sha256
from distill.core.shards import read_parquet, read_shards

# child stage dir -> the dir its manifest must name as its input
LINKS = {
    "curate": "generate",
    "curate_answers_only": "curate",
    "sft_traces": "curate",
    "sft_answers_only": "curate_answers_only",
    "eval_traces": "sft_traces",
    "eval_answers_only": "sft_answers_only",
    "eval_untrained": "student_init",
    "eval_on_policy": "opd_on_policy",
}
ARTIFACTS = [
    "prompts/train.jsonl", "prompts/arithmetic_test.jsonl", "generate/traces/traces-00000.parquet",
    "curate/data/train-00000.parquet", "curate/README.md", "curate/curation_report.json", "curate/rejected.parquet",
    "curate_answers_only/data/train-00000.parquet", "student_init/model.safetensors", "student_init/tokenizer.json",
    "sft_traces/model.safetensors", "sft_traces/recipe.yaml", "sft_traces/training_curve.png",
    "sft_answers_only/model.safetensors", "eval_traces/results.json", "eval_traces/samples/arithmetic.jsonl",
    "opd_on_policy/model.safetensors", "opd_on_policy/recipe.yaml", "opd_on_policy/training_curve.png",
    "eval_answers_only/results.json", "eval_on_policy/results.json", "eval_untrained/results.json", "results.json",
    "report.png", "report.md",
    "manifest.json",
]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """The quick demo, killed (SIGKILL) once the first student has saved a checkpoint, run again and killed once the
    on-policy student has saved one, then run a third time to the end: every test below looks at what a twice
    resumed demo leaves. Returns OUT, the last run's result and the second run's stderr."""
    out = tmp_path_factory.mktemp("demo") / "runs"
    # on a machine without bubblewrap, as most laptops and containers are: a math-only run must never need it
    env = env_without_command("bwrap", tmp_path_factory.mktemp("path_without_bwrap"))
    kill_at_checkpoint(out, "sft_traces", env)
    second = kill_at_checkpoint(out, "opd_on_policy", env)
    result = run_cli("demo", "--quick", "--on-policy", "--out", out, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result, second


def kill_at_checkpoint(out, stage, env) -> str:
    """Run the quick demo until `stage` has written a complete checkpoint, SIGKILL it there; its stderr."""
    log = out.parent / f"killed_at_{stage}.log"
    with log.open("w") as err:
        run = subprocess.Popen([sys.executable, "-m", "distill", "demo", "--quick", "--on-policy", "--out", str(out)],
                               cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.monotonic() + 600
        while run.poll() is None and time.monotonic() < deadline:
            if list((out / stage).glob("checkpoint-*/trainer_state.json")):
                time.sleep(1.0)  # let the checkpoint finish writing: a half-written one is set aside, not resumed
                run.kill()
                break
            time.sleep(0.3)
        assert run.wait() == -signal.SIGKILL, f"the demo finished or failed before {stage}'s first checkpoint"
    return log.read_text()


def manifest(out, name):
    return json.loads((out / name / "manifest.json").read_text())


@pytest.mark.slow
def test_quick_demo_writes_every_artifact_and_prints_the_table(quick_demo):
    out, result, _ = quick_demo
    missing = [a for a in ARTIFACTS if not (out / a).is_file()]
    assert not missing, missing
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trained on traces" in result.stdout and "untrained" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["accuracy"]) == {"traces", "answers_only", "on_policy", "untrained"}
    assert results["training"]["traces"]["steps"] == results["training"]["answers_only"]["steps"]
    # each stage's own time, recorded when it ran (to 0.1 s: writing the prompts may round to 0), and the total
    times = results["wall_time_s"]
    assert all(times[f"{stage}{name}"] > 0 for stage in ("sft_", "eval_") for name in ("traces", "answers_only"))
    assert times["opd_on_policy"] > 0 and times["eval_on_policy"] > 0
    assert times["generate"] > 0 and times["curate"] > 0
    assert abs(times["total"] - sum(v for k, v in times.items() if k != "total")) < 0.1 * len(times), times
    # what each student wrote for one held-out problem, beside the numbers
    example = results["example"]
    assert set(example["responses"]) == {"traces", "answers_only", "on_policy", "untrained"}
    assert "answers only, then on-policy from traces" in result.stdout
    # the trace-trained student writes in its teacher's format: a rate over every held-out sample, not one draw
    samples = [json.loads(line) for line in (out / "eval_traces" / "samples" / "arithmetic.jsonl").open()]
    in_format = sum(r["response"].startswith("running totals: ") for r in samples)
    assert in_format >= 0.8 * len(samples), (in_format, len(samples))
    # the untrained student's noise is shown escaped, never as raw bytes in the terminal
    assert "\ufffd" not in result.stdout
    assert "## One held-out problem" in (out / "report.md").read_text() and example["problem"] in result.stdout


@pytest.mark.slow
def test_a_killed_demo_resumes_training_from_its_checkpoint(quick_demo):
    out, result, second = quick_demo
    assert f"resuming from {out.resolve() / 'sft_traces'}/checkpoint-" in second
    assert "all 800 rows already in" in second  # the teacher's traces were kept, not regenerated
    # killed again in on-policy distillation: the third run resumes it, and retrains neither sft student
    assert f"resuming from {out.resolve() / 'opd_on_policy'}/checkpoint-" in result.stderr
    assert result.stderr.count("resuming from") == 1
    results = json.loads((out / "results.json").read_text())
    assert results["training"]["traces"]["steps"] == results["size"]["max_steps"] == 150
    assert results["training"]["on_policy"]["steps"] == results["size"]["opd_steps"]
    kept = read_shards(out / "curate" / "data", "train").column("id").to_pylist()
    assert len(kept) == len(set(kept)) == results["curation"]["kept"]  # nothing lost or duplicated


@pytest.mark.slow
def test_every_manifest_links_to_the_stage_before_it(quick_demo):
    out, *_ = quick_demo
    for child, parent in LINKS.items():
        [source] = manifest(out, child)["inputs"]
        assert source["path"] == str((out / parent).resolve()), child
        assert source["manifest_sha256"] == manifest_sha256(out / parent), child
    # from the eval report back to the teacher, through sft and curate
    traces_eval = manifest(out, "eval_traces")
    assert [e["stage"] for e in traces_eval["lineage"]] == ["sft", "curate", "generate"]
    assert find_stage(traces_eval, "generate")["config"]["teacher"] == "arithmetic"
    assert {i["path"] for i in manifest(out, ".")["inputs"]} == {
        str((out / f"eval_{n}").resolve()) for n in ("traces", "answers_only", "on_policy", "untrained")}


@pytest.mark.slow
def test_the_fourth_student_is_the_answers_only_one_taught_on_policy_by_the_trace_one(quick_demo):
    """opd's inputs are the answers-only student, the train prompts and the trace-trained teacher, nothing else: no
    traces and no answers reach it; its loss figures are recorded and results.json carries them."""
    out, *_ = quick_demo
    opd = manifest(out, "opd_on_policy")
    assert opd["stage"] == "opd" and opd["status"] == "complete"
    assert opd["config"]["student_dir"] == str((out / "sft_answers_only").resolve())
    assert opd["config"]["teacher_name"] == str((out / "sft_traces").resolve())
    assert opd["config"]["loss"]["beta"] == 0.0  # forward KL: demo_student.py says why
    assert {i["path"] for i in opd["inputs"]} == {str((out / d).resolve()) for d in
                                                  ("sft_answers_only", "prompts/train.jsonl", "sft_traces")}
    # the student's own lineage is carried forward: sft on the answers-only set, back to the teacher's traces
    assert [e["stage"] for e in opd["lineage"]][:3] == ["sft", "strip_reasoning", "curate"]
    results = json.loads((out / "results.json").read_text())
    training = results["training"]["on_policy"]
    assert training["steps"] == results["size"]["opd_steps"] == opd["counts"]["steps"]
    assert training["first_loss"] > 0 and training["last_loss"] > 0
    assert 0 <= results["accuracy"]["on_policy"] <= 1 and results["stderr"]["on_policy"] >= 0
    assert "answers only, then on-policy from traces" in (out / "report.md").read_text()


@pytest.mark.slow
def test_curate_dropped_each_flawed_trace_by_its_own_reason(quick_demo):
    out, *_ = quick_demo
    traces = read_shards(out / "generate" / "traces", "traces").to_pylist()
    kind = {t["id"]: classify(t["completion"], t["finish_reason"], t["answer"]) for t in traces}
    rejected = {r["id"]: r["reason"] for r in read_parquet(out / "curate" / "rejected.parquet").to_pylist()}
    flawed = {i: k for i, k in kind.items() if k != "correct"}
    assert set(Counter(flawed.values())) == {"truncated", "wrong_answer", "repetition", "mixed_language"}
    assert rejected == flawed  # every flawed trace dropped for its flaw, no correct trace dropped
    counts = json.loads((out / "curate" / "curation_report.json").read_text())["counts"]
    assert counts["kept"] == Counter(kind.values())["correct"]
    assert {r: n for r, n in counts["dropped"].items() if n} == dict(Counter(flawed.values()))
    card = (out / "curate" / "README.md").read_text()
    assert "decontamination\nagainst arithmetic_test." in card and "against AIME" not in card
    kept = read_shards(out / "curate" / "data", "train").to_pylist()
    stripped = read_shards(out / "curate_answers_only" / "data", "train").to_pylist()
    assert [r["id"] for r in kept] == [r["id"] for r in stripped]
    assert all(r["messages"][1]["content"].startswith("<think>\n\n</think>\n\nThe answer is \\boxed{")
               for r in stripped)


@pytest.mark.slow
def test_the_trace_trained_student_beats_the_untrained_one(quick_demo, tmp_path):
    out, *_ = quick_demo
    accuracy = json.loads((out / "results.json").read_text())["accuracy"]
    assert accuracy["untrained"] == 0.0
    assert accuracy["traces"] > accuracy["untrained"] + 0.05
    # already at the quick size the same budget spent on traces beats answers alone. Compared greedily on every
    # held-out problem, so that the demo's own single sample at T=0.6 (sd ~4 points per figure) plays no part
    greedy = {}
    for name in ("traces", "answers_only"):
        res = run_cli("eval", "--model", out / f"sft_{name}", "--tasks", "arithmetic", "--backend", "hf",
                      "--samples", "1", "--temperature", "0", "--max-tokens", "80", "--dtype", "float32",
                      "--data-dir", out / "prompts", "--out", tmp_path / name, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        greedy[name] = json.loads((tmp_path / name / "results.json").read_text())["tasks"]["arithmetic"]["pass@1"]
    assert greedy["traces"] > greedy["answers_only"] + 0.05, greedy  # measured: 23% vs 4% greedy (22% vs 8% sampled)
    # held out: no test problem was a train prompt
    problems = lambda f: {json.loads(line)["problem"] for line in (out / "prompts" / f).open()}  # noqa: E731
    assert not problems("train.jsonl") & problems("arithmetic_test.jsonl")


def test_demo_refuses_bad_settings_in_one_line(tmp_path):
    result = run_cli("demo", "--out", tmp_path / "d", "--set", "terms=12")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "terms" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "d").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    for force in ((), ("--force",)):  # --force clears a demo's folder, never a folder of something else
        result = run_cli("demo", "--quick", "--out", busy, *force)
        assert result.returncode == 2 and "holds no demo" in result.stderr
        assert (busy / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_a_second_run_resumes_every_stage_and_keeps_the_figures(quick_demo):
    out, *_ = quick_demo
    before = json.loads((out / "results.json").read_text())
    model = (out / "sft_traces" / "model.safetensors").stat().st_mtime_ns
    result = run_cli("demo", "--quick", "--on-policy", "--out", out, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    after = json.loads((out / "results.json").read_text())
    assert after["accuracy"] == before["accuracy"] and after["curation"] == before["curation"]
    # nothing retrained, and each stage still reports what it cost when it ran, not the ~0 s of skipping it
    assert (out / "sft_traces" / "model.safetensors").stat().st_mtime_ns == model
    assert after["wall_time_s"] == before["wall_time_s"]
    # a demo of another size is refused rather than mixed into this one
    result = run_cli("demo", "--out", out, "--max-steps", "7")
    assert result.returncode == 2 and "other settings" in result.stderr


@pytest.mark.slow
def test_plan_from_the_demo_reproduces_its_measured_token_counts(quick_demo):
    """`distill plan --from` a finished demo: the same prompts planned again give the run's exact token counts,
    following generate -> curate -> sft_traces -> eval_traces (not the answers-only control)."""
    out, *_ = quick_demo
    result = run_cli("plan", "--from", out, "--teacher", "arithmetic", "--student", "recipes/tiny.yaml", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    stages, traces = plan["stages"], read_shards(out / "generate" / "traces", "traces").to_pylist()
    assert stages["generate"]["completion_tokens"] == manifest(out, "generate")["counts"]["completion_tokens"]
    assert stages["generate"]["prompt_tokens"] == sum(t["prompt_tokens"] for t in traces)
    assert stages["curate"]["kept"] == manifest(out, "curate")["counts"]["kept"]
    tasks = json.loads((out / "eval_traces" / "results.json").read_text())["tasks"]
    for name, task in tasks.items():
        planned = stages["eval"]["tasks"][name]
        assert planned["samples"] == task["samples"] and planned["tokens"] == round(task["samples"] * task["mean_tokens"])
    assert plan["assumptions"][f"eval_tokens.{next(iter(tasks))}"]["source"] == f"measured: {out / 'eval_traces'}"
