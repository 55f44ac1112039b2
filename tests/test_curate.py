"""`distill curate` end to end through the real CLI: every row accounted for with its reason, output that loads
with `datasets` and trains with TRL, a killed run resumed with nothing lost or redone, the card, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

ASSETS = Path(__file__).parent / "assets"


def tiny_rows(shared_data: Path) -> list[dict]:
    """The hand-made fixture plus one trace whose prompt is a verbatim AIME 2024 problem."""
    rows = [json.loads(line) for line in (ASSETS / "traces_tiny.jsonl").read_text().splitlines()]
    aime = json.loads((shared_data / "aime24.jsonl").read_text().splitlines()[0])
    template = dict(rows[0])
    rows.append({**template, "id": "aime-copy/0", "prompt_id": "aime-copy", "problem": aime["problem"],
                 "answer": aime["answer"], "case": "verbatim AIME 2024 problem", "expect": "contaminated",
                 "messages": [{"role": "user", "content": aime["problem"] + "\nPlease reason step by step."}],
                 "completion": f"<think>\nworking...\n</think>\n\n$\\boxed{{{aime['answer']}}}$"})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def curate_args(src: Path, out: Path, shared_data: Path, *extra: str) -> list[str]:
    return ["curate", str(src), "--out", str(out), "--eval-data-dir", str(shared_data), "--set", "unit_rows=5",
            "--set", "wrong_answer.timeout=1", *extra]


@pytest.fixture(scope="module")
def curated(tmp_path_factory, shared_data):
    """One run on two worker processes: (input rows, input file, output dir)."""
    tmp = tmp_path_factory.mktemp("curate")
    rows = tiny_rows(shared_data)
    src = write_jsonl(rows, tmp / "traces.jsonl")
    result = run_cli(*curate_args(src, tmp / "out", shared_data, "--num-proc", "2"))
    assert result.returncode == 0, result.stderr
    return rows, src, tmp / "out"


def outcome(out: Path) -> dict[str, str]:
    """id -> reason for every row: 'kept' for rows in data/, else the reason in rejected.parquet."""
    reasons = {r["id"]: r["reason"] for r in pq.read_table(out / "rejected.parquet").to_pylist()}
    for shard in sorted((out / "data").glob("train-*.parquet")):
        for row_id in pq.read_table(shard, columns=["id"]).column("id").to_pylist():
            assert row_id not in reasons, f"{row_id} both kept and dropped"
            reasons[row_id] = "kept"
    return reasons


def test_every_row_is_kept_or_dropped_for_its_own_reason(curated):
    rows, _, out = curated
    got = outcome(out)
    assert len(got) == len(rows)
    wrong = {r["case"]: (r["expect"], got.get(r["id"])) for r in rows if got.get(r["id"]) != r["expect"]}
    assert wrong == {}


def test_the_report_accounts_for_every_row(curated):
    rows, _, out = curated
    report = json.loads((out / "curation_report.json").read_text())
    counts = report["counts"]
    assert counts["input_rows"] == len(rows)
    assert counts["kept"] + sum(counts["dropped"].values()) == len(rows)
    for reason, n in counts["dropped"].items():
        assert n == sum(r["expect"] == reason for r in rows), reason
    aime = report["decontamination"]["aime24"]
    assert (aime["eval_problems_found"], aime["rows_dropped"]) == (1, 1)
    assert report["grader"]["timeout"] == 1  # the sympy-hanging answer: counted wrong, run not stalled
    assert report["units"] == {"total": 5, "resumed": 0}


def test_output_loads_with_datasets_in_the_sft_schema(curated):
    import datasets

    from distill.core.schema import SFT_EXAMPLE

    rows, _, out = curated
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.column_names == SFT_EXAMPLE.names
    traces = {r["id"]: r for r in rows}
    assert sorted(ds["id"]) == sorted(i for i, r in traces.items() if r["expect"] == "kept")
    for example in ds:
        trace = traces[example["id"]]
        user, assistant = example["messages"]
        assert user == {"role": "user", "content": trace["messages"][0]["content"]}  # exactly what the teacher saw
        assert assistant["role"] == "assistant" and example["num_tokens"] > 0
        if trace["teacher"] == "deepseek-v3":
            assert assistant["content"] == trace["completion"]
        else:
            assert assistant["content"].startswith("<think>\n") and "\n</think>\n\n" in assistant["content"]


def test_the_dataset_card(curated):
    import yaml

    rows, _, out = curated
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["configs"][0]["data_files"][0]["path"] == "data/train-*"
    assert header["size_categories"] == ["n<1K"] and header["license"] == "other"  # teachers mixed: say so
    for section in ("## Provenance", "## Curation", "## Decontamination", "## Token lengths", "## Lineage"):
        assert section in card
    assert "| AIME 2024 | 30 | 1 | 1 | 1 |" in card
    assert "decontamination\nagainst AIME 2024, AIME 2025, MATH-500." in card  # names what was actually checked
    assert (out / "token_lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["kept"] == sum(r["expect"] == "kept" for r in rows)


def test_a_killed_run_resumes_without_redoing_or_losing_rows(curated, tmp_path, shared_data):
    rows, src, reference = curated
    out = tmp_path / "out"
    args = curate_args(src, out, shared_data, "--num-proc", "1")
    killed = run_cli(*args, env={"_DISTILL_TEST_KILL_AFTER_UNITS": "2"})
    assert killed.returncode == -9
    assert len(list((out / ".curate").glob("unit-*.json"))) == 2 and not (out / "data").exists()
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "curation_report.json").read_text())
    assert report["units"] == {"total": 5, "resumed": 2}
    assert outcome(out) == outcome(reference)
    assert read_data(out) == read_data(reference)
    assert not (out / ".curate").exists()


def read_data(out: Path) -> list[dict]:
    table = pa.concat_tables(pq.read_table(p) for p in sorted((out / "data").glob("*.parquet")))
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def test_rerun_is_a_no_op_and_a_changed_config_is_refused(curated, shared_data):
    _, src, out = curated
    again = run_cli(*curate_args(src, out, shared_data))
    assert again.returncode == 0 and "already complete" in again.stdout
    # the same folders spelled relative to another working directory are the same config
    relative = curate_args(src, out, shared_data)
    relative[relative.index(str(shared_data))] = shared_data.name
    again = run_cli(*relative, cwd=shared_data.parent)
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr
    changed = run_cli(*curate_args(src, out, shared_data, "--set", "too_short.min_tokens=1"))
    assert changed.returncode == 2
    assert changed.stderr.startswith("error: ") and "--force" in changed.stderr and len(changed.stderr.splitlines()) == 1


def test_one_sft_step_on_the_output(curated, tiny_model, tmp_path):
    """TRL's SFTTrainer takes the output as it is (conversational `messages`)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    _, _, out = curated
    ds = datasets.load_dataset(str(out), split="train")
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2, max_length=256,
                     report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=str(tiny_model), args=args, train_dataset=ds)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


def test_generate_dir_provenance_lineage_and_tokenizer(tmp_path, shared_data):
    """A generate directory's manifest flows into the card (teacher, sampling, manifest hash) and the lineage;
    --tokenizer counts num_tokens with the student's tokenizer."""
    from transformers import AutoTokenizer

    from distill.core.manifest import manifest_sha256, write_manifest
    from distill.core.schema import TRACE
    from distill.core.shards import ShardWriter

    gen = tmp_path / "gen"
    rows = [{k: v for k, v in r.items() if k in TRACE.names} for r in tiny_rows(shared_data)]
    with ShardWriter(gen / "traces", "traces", TRACE, shard_rows=10) as writer:
        for row in rows:
            writer.add(row)
    resolved = {"teacher": "deepseek-r1", "model": "deepseek-ai/DeepSeek-R1", "temperature": 0.6, "top_p": 0.95,
                "max_tokens": 32768, "prompt_suffix": "Please reason step by step.", "system_prompt": None, "seed": 0}
    write_manifest(gen, "generate", {"prompts": "tiny.jsonl", "num_samples": 1, "resolved": resolved},
                   counts={"rows": len(rows)})
    tok = ASSETS / "tiny_tokenizer"
    result = run_cli("curate", str(gen), "--out", str(tmp_path / "out"), "--eval-data-dir", str(shared_data),
                     "--num-proc", "1", "--tokenizer", str(tok), "--set", "wrong_answer.timeout=1")
    assert result.returncode == 0, result.stderr
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`deepseek-ai/DeepSeek-R1`" in card and "temperature 0.6" in card and manifest_sha256(gen) in card
    assert f"tokenizer {tok}" in card
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["lineage"][0]["stage"] == "generate" and manifest["lineage"][0]["manifest_sha256"] == manifest_sha256(gen)
    tokenizer = AutoTokenizer.from_pretrained(tok)
    example = read_data(tmp_path / "out")[0]
    empty = tokenizer.apply_chat_template([{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
                                          tokenize=False)
    expected = sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in example["messages"])
    assert example["num_tokens"] == expected + len(tokenizer(empty, add_special_tokens=False)["input_ids"])


REAL = "real_traces/skythought_math_traces.jsonl"


def test_real_traces_curate_as_they_come(tmp_path, shared_data):
    """The 640 real Sky-T1 traces, given as they are (flat rows: `reference_answer`, no prompt_id, no finish
    reason, Sky-T1's tags): every row accounted for by its own id; the MATH-500 and AIME 2024 problems among
    them never reach the dataset, so only AMC 2023 rows are kept."""
    rows = [json.loads(line) for line in (shared_data / REAL).open()]
    result = run_cli("curate", str(shared_data / REAL), "--out", str(tmp_path / "out"), "--eval-data-dir",
                     str(shared_data), "--num-proc", "2", "--set", "unit_rows=200")
    assert result.returncode == 0, result.stderr
    assert "input format 'flat' (detected from the columns)" in result.stderr
    got = outcome(tmp_path / "out")
    assert set(got) == {r["id"] for r in rows}
    report = json.loads((tmp_path / "out" / "curation_report.json").read_text())
    counts = report["counts"]
    assert counts["input_rows"] == 640 and counts["kept"] + sum(counts["dropped"].values()) == 640
    # 135 traces never close their reasoning; the finish reason is unknown, so the text decides
    assert counts["dropped"]["truncated"] == 135 and "from the text" in report["examples"]["truncated"][0]["detail"]
    assert report["decontamination"]["math500"]["rows_dropped"] > 150
    assert report["decontamination"]["aime24"]["eval_problems_found"] >= 10
    assert {r["benchmark"] for r in rows if got[r["id"]] == "kept"} == {"amc23"}


def test_real_traces_verdicts_agree_with_the_source_labels(tmp_path, shared_data):
    """With decontamination off, curate's verdicts on the 295 traces that close their reasoning agree with the
    source's evaluator on 289. The others, read one by one: no
    \\boxed{} after the reasoning (the source reads plain text, the R1 protocol does not) and two references the
    source's harness mangled (a pmatrix lost its `\\\\` rows)."""
    rows = [json.loads(line) for line in (shared_data / REAL).open()]
    chain = "filters=[truncated, bad_think_format, no_answer, wrong_answer, duplicate]"
    result = run_cli("curate", str(shared_data / REAL), "--out", str(tmp_path / "out"), "--eval-data-dir",
                     str(shared_data), "--num-proc", "2", "--set", "unit_rows=200", "--set", chain,
                     # a test of verdicts, not of the time limit: no pair may run out of time on a loaded machine
                     "--set", "wrong_answer.timeout=60")
    assert result.returncode == 0, result.stderr
    got = outcome(tmp_path / "out")
    finished = [r for r in rows if "<|end_of_thought|>" in r["completion"]]
    ours = {r["id"]: got[r["id"]] not in ("wrong_answer", "no_answer") for r in finished}
    disagree = [r for r in finished if ours[r["id"]] != r["label_correct"]]
    assert len(finished) == 295 and len(disagree) <= 6, [r["id"] for r in disagree]
    detail = {r["id"]: r["detail"] for r in pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()}
    for r in disagree:  # each one of the two kinds the docstring names; a judge error or timeout is not excused
        assert got[r["id"]] == "no_answer" or "pmatrix" in r["reference_answer"], (r["id"], detail.get(r["id"]))
    report = json.loads((tmp_path / "out" / "curation_report.json").read_text())
    labels = report["source_labels"]
    assert sum(labels.values()) == 640 and labels["source correct, curate correct"] >= 282
    card = (tmp_path / "out" / "README.md").read_text()
    assert "column label_correct" in card and "source correct, curate correct" in card


# ---------------------------------------------------------------- bad input: one line, exit 2


def _parquet_without_completion(tmp: Path) -> Path:
    path = tmp / "traces.parquet"
    pq.write_table(pa.table({"id": ["a/0"], "prompt_id": ["a"], "finish_reason": ["stop"]}), path)
    return path


def _parquet_wrong_type(tmp: Path) -> Path:
    path = tmp / "traces.parquet"
    pq.write_table(pa.table({"id": ["a/0"], "prompt_id": ["a"], "completion": ["x"], "finish_reason": [1]}), path)
    return path


def _empty_dir(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _bad_json(tmp: Path) -> Path:
    path = tmp / "traces.jsonl"
    path.write_text('{"id": "a/0", "prompt_id": "a", "completion": "x", "finish_reason": "stop"}\n{oops\n')
    return path


def _empty_file(tmp: Path) -> Path:
    path = tmp / "traces.jsonl"
    path.write_text("")
    return path


@pytest.mark.parametrize(
    "make_src, extra, message",
    [
        (_parquet_without_completion, [], "missing column(s) completion"),
        (_parquet_wrong_type, [], "finish_reason is int64"),
        (_empty_dir, [], "no trace shards"),
        (_bad_json, [], "not valid JSON"),
        (_empty_file, [], "is empty"),
        (_bad_json, ["--set", "filters=[truncated, dedup]"], "unknown filter(s) dedup"),
        (_bad_json, ["--set", "filters=[duplicate, truncated]"], "list them after the row filters"),
    ],
)
def test_bad_input_is_one_line(make_src, extra, message, tmp_path, shared_data):
    src = make_src(tmp_path)
    result = run_cli("curate", str(src), "--out", str(tmp_path / "out"), "--eval-data-dir", str(shared_data), *extra)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_help():
    result = run_cli("curate", "--help")
    assert result.returncode == 0 and "--eval-data-dir" in result.stdout


def test_missing_eval_data_is_one_line(tmp_path):
    src = write_jsonl([json.loads((ASSETS / "traces_tiny.jsonl").read_text().splitlines()[0])], tmp_path / "t.jsonl")
    result = run_cli("curate", str(src), "--out", str(tmp_path / "out"), "--eval-data-dir", str(tmp_path))
    assert result.returncode == 2 and "aime24.jsonl" in result.stderr and "--eval-data-dir" in result.stderr


def test_nothing_kept_is_said_plainly(tmp_path, shared_data):
    rows = [json.loads(line) for line in (ASSETS / "traces_tiny.jsonl").read_text().splitlines()][:3]
    src = write_jsonl([{**r, "finish_reason": "length"} for r in rows], tmp_path / "t.jsonl")
    result = run_cli(*curate_args(src, tmp_path / "out", shared_data))
    assert result.returncode == 0, result.stderr
    assert "no trace survived curation (most dropped as truncated: 3)" in result.stderr
    assert "curation_report.json" in result.stderr
