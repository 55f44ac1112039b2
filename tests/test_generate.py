"""`distill generate` with the transformers backend on a tiny local teacher, resume semantics, bad input."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from conftest import TEACHER_REPLY, run_cli

from distill.core.manifest import read_manifest
from distill.core.schema import TRACE, validate
from distill.core.shards import read_shards
from distill.core.stage_dirs import shard_paths
from distill.core.teachers import R1_PROMPT_SUFFIX


def write_prompts(path, n=5, **extra):
    rows = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i), "level": i, "tag": "x", **extra}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gen(prompts, out, model, *extra):
    return run_cli("generate", "--prompts", prompts, "--out", out, "--backend", "transformers", "--model", model,
                   "--max-tokens", "48", *extra)


def test_n_prompts_times_k_samples_in_the_trace_schema(tmp_path, parrot_model):
    prompts = write_prompts(tmp_path / "p.jsonl")
    res = gen(prompts, tmp_path / "gen", parrot_model, "-k", "2")
    assert res.returncode == 0, res.stderr
    table = read_shards(tmp_path / "gen" / "traces")
    validate(table.schema, TRACE, "traces")
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [f"p{i}/{s}" for i in range(5) for s in range(2)]
    for r in rows:
        assert r["completion"] == TEACHER_REPLY and r["finish_reason"] == "stop"
        assert r["prompt_tokens"] > 5 and r["completion_tokens"] > 10
        assert r["messages"] == [{"role": "user", "content": f"{r['problem']}\n{R1_PROMPT_SUFFIX}"}]
        assert (r["teacher"], r["model"]) == ("deepseek-r1", str(parrot_model))
        assert r["answer"] == str(2 * int(r["prompt_id"][1:])) and r["level"] == int(r["prompt_id"][1:])  # carried
    manifest = read_manifest(tmp_path / "gen")
    assert manifest["status"] == "complete" and manifest["counts"]["rows"] == 10
    assert manifest["config"]["resolved"]["temperature"] == 0.6 and manifest["counts"]["finish_reasons"] == {"stop": 10}
    assert "rows" in res.stdout and "10 / 10" in res.stdout  # the summary


def test_rerun_skips_written_ids_and_more_samples_adds_only_new_rows(tmp_path, parrot_model):
    prompts = write_prompts(tmp_path / "p.jsonl", n=3)
    out = tmp_path / "gen"
    assert gen(prompts, out, parrot_model).returncode == 0
    first = {p.name: p.stat().st_mtime_ns for p in shard_paths(out / "traces")}
    manifest = (out / "manifest.json").read_bytes()
    res = gen(prompts, out, parrot_model)
    assert res.returncode == 0 and "nothing to do" in res.stderr
    assert {p.name: p.stat().st_mtime_ns for p in shard_paths(out / "traces")} == first  # untouched
    assert (out / "manifest.json").read_bytes() == manifest  # curate holds its hash: a no-op re-run keeps it
    # the same model spelled relative to another working directory is the same teacher config
    res = run_cli("generate", "--prompts", prompts, "--out", out, "--backend", "transformers", "--model",
                  parrot_model.name, "--max-tokens", "48", cwd=parrot_model.parent)
    assert res.returncode == 0 and "nothing to do" in res.stderr, res.stderr[-2000:]
    assert gen(prompts, out, parrot_model, "-k", "3").returncode == 0
    ids = read_shards(out / "traces").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 9


def test_changed_sampling_is_refused_unless_forced(tmp_path, parrot_model):
    prompts = write_prompts(tmp_path / "p.jsonl", n=2)
    out = tmp_path / "gen"
    assert gen(prompts, out, parrot_model).returncode == 0
    more = write_prompts(tmp_path / "more.jsonl", n=4)
    res = gen(more, out, parrot_model, "--temperature", "1.0")
    assert res.returncode == 2 and "temperature: 0.6 -> 1.0" in res.stderr and "--force" in res.stderr
    assert read_shards(out / "traces").num_rows == 2
    res = gen(more, out, parrot_model, "--temperature", "1.0", "--force")
    assert res.returncode == 0, res.stderr
    assert read_shards(out / "traces").num_rows == 4
    assert len(read_manifest(out)["sampling_history"]) == 2  # both configs recorded


def test_token_limit_gives_length_finish(tmp_path, parrot_model):
    prompts = write_prompts(tmp_path / "p.jsonl", n=2)
    res = gen(prompts, tmp_path / "gen", parrot_model, "--max-tokens", "4")
    assert res.returncode == 0, res.stderr
    rows = read_shards(tmp_path / "gen" / "traces").to_pylist()
    assert {r["finish_reason"] for r in rows} == {"length"} and {r["completion_tokens"] for r in rows} == {4}


def test_prompts_without_ids_get_stable_content_ids_and_parquet_works(tmp_path, parrot_model):
    import pyarrow as pa

    pq.write_table(pa.table({"question": ["What is 1 + 1?", "What is 2 + 2?"], "sol": ["2", "4"]}), tmp_path / "p.parquet")
    args = ("--problem-field", "question", "--answer-field", "sol")
    assert gen(tmp_path / "p.parquet", tmp_path / "a", parrot_model, *args).returncode == 0
    assert gen(tmp_path / "p.parquet", tmp_path / "b", parrot_model, *args).returncode == 0
    a, b = (sorted(read_shards(tmp_path / d / "traces").column("id").to_pylist()) for d in "ab")
    assert a == b and len(a) == 2
    assert sorted(read_shards(tmp_path / "a" / "traces").column("answer").to_pylist()) == ["2", "4"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, parrot_model):
    """A finished 2 prompts x 2 samples run that every bad-input case tries to damage."""
    tmp = tmp_path_factory.mktemp("finished")
    prompts = write_prompts(tmp / "p.jsonl", n=2)
    assert gen(prompts, tmp / "gen", parrot_model, "-k", "2").returncode == 0
    return prompts, tmp / "gen"


def bad_prompts(tmp_path, text):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_file", "prompts file"),
        ("no_problem_field", "have no 'problem' field"),
        ("duplicate_ids", "not unique"),
        ("empty_problem", "empty or non-text 'problem'"),
        ("bad_json", "is not valid JSON"),
        ("unknown_teacher", "unknown teacher 'gpt-17'"),
        ("unreachable_server", "cannot reach the teacher server"),
        ("missing_key_env", "DISTILL_TEST_KEY is not set"),
        ("hub_offline", "could not load prompts 'some-org/some-dataset'"),
        ("no_backend", "no usable backend"),
    ],
)
def test_bad_input_is_one_line_error_and_leaves_output_untouched(tmp_path, parrot_model, finished_run, case, expected):
    good, out = finished_run[0], tmp_path / "gen"
    shutil.copytree(finished_run[1], out)
    before = {p.name: p.read_bytes() for p in (out / "traces").iterdir()}
    manifest_before = (out / "manifest.json").read_bytes()
    same = ["--model", str(parrot_model), "--max-tokens", "48", "-k", "2"]  # so only the bad part differs
    prompts, extra = good, ["--backend", "transformers", *same]
    if case == "missing_file":
        prompts = tmp_path / "nope.jsonl"
    elif case == "no_problem_field":
        prompts = bad_prompts(tmp_path, '{"id": "a", "question": "x"}\n')
    elif case == "duplicate_ids":
        prompts = bad_prompts(tmp_path, '{"id": "a", "problem": "x"}\n{"id": "a", "problem": "y"}\n')
    elif case == "empty_problem":
        prompts = bad_prompts(tmp_path, '{"id": "a", "problem": "  "}\n')
    elif case == "bad_json":
        prompts = bad_prompts(tmp_path, '{"id": "a", "problem": "x"}\n{"id": \n')
    elif case == "unknown_teacher":
        extra += ["--teacher", "gpt-17"]
    if case in ("unreachable_server", "missing_key_env", "no_backend"):
        prompts = write_prompts(tmp_path / "more.jsonl", n=3)  # work left to do, so a backend is needed
    if case == "unreachable_server":
        extra = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", *same]
    elif case == "missing_key_env":
        extra = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "DISTILL_TEST_KEY",
                 *same]
    elif case == "hub_offline":
        prompts = "some-org/some-dataset"
    elif case == "no_backend":
        extra = same
    res = run_cli("generate", "--prompts", prompts, "--out", out, *extra)
    assert res.returncode == 2, res.stdout + res.stderr
    error_lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert {p.name: p.read_bytes() for p in (out / "traces").iterdir()} == before
    assert (out / "manifest.json").read_bytes() == manifest_before


def test_teachers_command_lists_the_registry():
    res = run_cli("teachers")
    assert res.returncode == 0
    for name in ("deepseek-r1", "deepseek-r1-0528", "deepseek-v3", "qwq-32b"):
        assert name in res.stdout
