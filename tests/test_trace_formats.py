"""`distill curate` on published trace sets, through the real CLI: each input format from a fixture written in
that dataset's real column layout (from its dataset card: names, nesting, types), detected from the columns,
mapped onto TRACE, every row accounted for, and the mapping recorded in the manifest and the card."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from distill.core.protocol import problem_id

THINK_OK = "<think>\nWe add the two numbers: {a} plus {b} is {c}. Checking by subtraction, {c} minus {b} is {a}.\n</think>"


def curate(src: Path, out: Path, shared_data: Path, *extra: str):
    result = run_cli("curate", str(src), "--out", str(out), "--eval-data-dir", str(shared_data), "--num-proc", "1",
                     "--set", "wrong_answer.timeout=2", *extra)
    return result


def outcome(out: Path) -> dict[str, str]:
    """id -> 'kept' or the drop reason, for every row curate saw."""
    reasons = {r["id"]: r["reason"] for r in pq.read_table(out / "rejected.parquet").to_pylist()}
    for shard in sorted((out / "data").glob("train-*.parquet")):
        for row_id in pq.read_table(shard, columns=["id"]).column("id").to_pylist():
            assert row_id not in reasons
            reasons[row_id] = "kept"
    return reasons


def kept_rows(out: Path) -> list[dict]:
    return [r for shard in sorted((out / "data").glob("train-*.parquet")) for r in pq.read_table(shard).to_pylist()]


def added(a: int, b: int, boxed: int | None = None) -> str:
    return THINK_OK.format(a=a, b=b, c=a + b) + f"\n\nSo the sum is $\\boxed{{{a + b if boxed is None else boxed}}}$."


# ---------------------------------------------------------------- OpenR1-Math-220k: k generations per row


def openr1_table() -> pa.Table:
    """OpenR1-Math-220k's layout (dataset card, config default): problem, solution, answer, problem_type,
    question_type, source, uuid, is_reasoning_complete: list<bool>, generations: list<string>,
    correctness_math_verify: list<bool>, correctness_llama: list<bool> (often null), finish_reasons: list<string>,
    correctness_count: int64, messages: list<{content, role}>."""
    rows = [
        {"problem": "A farmer has 17 sheep and buys 25 more at the autumn market. How many sheep are there now?",
         "solution": "17 + 25 = 42, so there are $\\boxed{42}$ sheep.", "answer": "42", "problem_type": "Algebra",
         "question_type": "math-word-problem", "source": "olympiads", "uuid": "3f1c-sheep",
         "is_reasoning_complete": [True, False, True],
         "generations": [added(17, 25), "<think>\nLet me count the sheep one at a time. 17, then 18, 19, 20",
                         added(17, 25, boxed=41)],
         "correctness_math_verify": [True, False, False], "correctness_llama": None,
         "finish_reasons": ["stop", "length", "stop"], "correctness_count": 1,
         "messages": [{"content": "A farmer has 17 sheep ...", "role": "user"},
                      {"content": added(17, 25), "role": "assistant"}]},
        {"problem": "Compute the total number of wheels on 30 tricycles parked outside a school gymnasium.",
         "solution": "Each tricycle has 3 wheels: $30 \\cdot 3 = \\boxed{90}$.", "answer": "90",
         "problem_type": "Arithmetic", "question_type": "math-word-problem", "source": "cn_k12", "uuid": "9a7e-wheels",
         "is_reasoning_complete": [True, True],
         "generations": ["<think>\nThree wheels per tricycle, thirty tricycles, so thirty times three is ninety."
                         "\n</think>\n\nThere are $\\boxed{90}$ wheels.",
                         "<think>\nEach tricycle has three wheels; 30 of them make 3 times 30, which is 90 in all."
                         "\n</think>\n\nThe total is $\\boxed{90}$."],
         "correctness_math_verify": [True, True], "correctness_llama": None, "finish_reasons": ["stop", "stop"],
         "correctness_count": 2, "messages": [{"content": "Compute ...", "role": "user"}]},
    ]
    message = pa.struct([("content", pa.string()), ("role", pa.string())])
    schema = pa.schema([("problem", pa.string()), ("solution", pa.string()), ("answer", pa.string()),
                        ("problem_type", pa.string()), ("question_type", pa.string()), ("source", pa.string()),
                        ("uuid", pa.string()), ("is_reasoning_complete", pa.list_(pa.bool_())),
                        ("generations", pa.list_(pa.string())), ("correctness_math_verify", pa.list_(pa.bool_())),
                        ("correctness_llama", pa.list_(pa.bool_())), ("finish_reasons", pa.list_(pa.string())),
                        ("correctness_count", pa.int64()), ("messages", pa.list_(message))])
    return pa.Table.from_pylist(rows, schema=schema)


def test_openr1_generations_are_exploded_with_their_provenance(tmp_path, shared_data):
    src = tmp_path / "openr1" / "data" / "train-00000-of-00001.parquet"  # as the hub repo lays it out
    src.parent.mkdir(parents=True)
    pq.write_table(openr1_table(), src)
    result = curate(tmp_path / "openr1", tmp_path / "out", shared_data)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("input format 'generations' (detected from the columns)") == 1
    got = outcome(tmp_path / "out")
    assert got == {"3f1c-sheep/0": "kept", "3f1c-sheep/1": "truncated", "3f1c-sheep/2": "wrong_answer",
                   "9a7e-wheels/0": "kept", "9a7e-wheels/1": "kept"}
    report = json.loads((tmp_path / "out" / "curation_report.json").read_text())
    assert report["examples"]["truncated"][0]["detail"] == "finish_reason=length"  # the set's own finish reason
    assert report["input"]["source_rows"] == 2 and report["input"]["trace_rows"] == 5
    assert report["accounting"] == "3 kept + 2 dropped = 5 traces (exploded from 2 input rows)"
    # the set's per-generation verdicts (correctness_math_verify) next to ours
    assert report["source_labels"] == {"source correct, curate correct": 3, "source wrong, curate wrong": 1,
                                       "source wrong, curate not graded": 1}
    kept = kept_rows(tmp_path / "out")
    # no prompt_id column: the k generations of a problem share the hash of its text (uuid names the rows)
    wheels = problem_id(openr1_table().column("problem")[1].as_py())
    assert [r["prompt_id"] for r in kept if r["id"].startswith("9a7e")] == [wheels, wheels]
    assert {r["source"] for r in kept} == {"olympiads", "cn_k12"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["input"]["format"] == "generations" and manifest["input"]["fields"]["label"] == \
        "correctness_math_verify"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`generations` input format" in card and "each item of column generations" in card


def test_k_generations_of_one_problem_share_a_prompt_id_for_the_cap(tmp_path, shared_data):
    """Without an id column the prompt id is a hash of the problem text, so the per-prompt cap groups them."""
    table = openr1_table().drop_columns(["uuid"])
    pq.write_table(table, tmp_path / "openr1.parquet")
    result = curate(tmp_path / "openr1.parquet", tmp_path / "out", shared_data, "--set", "per_prompt_cap.max_per_prompt=1")
    assert result.returncode == 0, result.stderr
    wheels = problem_id(table.column("problem")[1].as_py())
    got = outcome(tmp_path / "out")
    assert {got[f"{wheels}/0"], got[f"{wheels}/1"]} == {"kept", "per_prompt_cap"}
    assert [r["prompt_id"] for r in kept_rows(tmp_path / "out") if r["id"].startswith(wheels)] == [wheels]


# ---------------------------------------------------------------- conversations: ShareGPT and role/content


SKY_SYSTEM = ("Your role as an assistant involves thoroughly exploring questions through a systematic long thinking "
              "process before providing the final precise and accurate solutions.")


def sharegpt_row(problem: str, thought: str, solution: str, closed: bool = True) -> dict:
    """OpenThoughts-114k / Bespoke-Stratos-17k / Sky-T1_data_17k: system: string, conversations: list<{from,
    value}> with from = user / assistant; the assistant turn in Sky-T1's tags."""
    answer = f"<|begin_of_thought|>\n\n{thought}\n\n" + (
        f"<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{solution}\n\n<|end_of_solution|>" if closed else "")
    return {"system": SKY_SYSTEM,
            "conversations": [{"from": "user", "value": f"Return your final response within \\boxed{{}}. {problem}"},
                              {"from": "assistant", "value": answer}]}


def test_sharegpt_conversations_parquet_jsonl_and_json(tmp_path, shared_data):
    """OpenThoughts-114k (parquet), Bespoke-Stratos-17k (jsonl) and Sky-T1_data_17k (one .json list) share the
    layout; the last assistant turn is the completion, its tags normalised, the system prompt not trained on."""
    rows = [
        sharegpt_row("A rectangle has sides 6 and 11. What is its perimeter?",
                     "Perimeter is twice the sum of the sides: 2 times 17 is 34.", "The perimeter is $\\boxed{34}$."),
        sharegpt_row("How many minutes are in seven and a half hours?",
                     "Seven hours is 420 minutes, and half an hour is 30 more", "", closed=False),
    ]
    turn = pa.struct([("from", pa.string()), ("value", pa.string())])
    schema = pa.schema([("system", pa.string()), ("conversations", pa.list_(turn))])
    files = {"openthoughts.parquet": lambda p: pq.write_table(pa.Table.from_pylist(rows, schema=schema), p),
             "bespoke.jsonl": lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in rows)),
             "Sky-T1_data_17k.json": lambda p: p.write_text(json.dumps(rows))}
    for name, write in files.items():
        write(tmp_path / name)
        out = tmp_path / f"out-{name}"
        result = curate(tmp_path / name, out, shared_data)
        assert result.returncode == 0, (name, result.stderr)
        assert "input format 'conversations' (detected" in result.stderr
        kept = kept_rows(out)
        assert len(kept) == 1, name
        user, assistant = kept[0]["messages"]
        assert user["role"] == "user" and user["content"].startswith("Return your final response") and \
            SKY_SYSTEM not in user["content"]
        assert assistant["content"].startswith("<think>\nPerimeter is twice") and "</think>\n\nThe perimeter" in \
            assistant["content"]
        report = json.loads((out / "curation_report.json").read_text())
        assert report["counts"]["input_rows"] == 2 and report["counts"]["dropped"]["truncated"] == 1
        assert report["examples"]["truncated"][0]["detail"] == \
            "finish_reason unknown; from the text: no </think> (cut off in the reasoning)"


def test_role_content_messages_with_a_system_turn(tmp_path, shared_data):
    """`messages` of {role, content} (OpenThoughts3, the open-r1 conversions) with an answer column named by flag."""
    rows = [{"messages": [{"role": "system", "content": "Think first."},
                          {"role": "user", "content": "What is the remainder when 100 is divided by 7?"},
                          {"role": "assistant", "content": "<think>\n7 times 14 is 98, so 100 leaves 2.\n</think>"
                                                          "\n\nThe remainder is $\\boxed{2}$."}],
             "domain": "math", "gold": "2"},
            {"messages": [{"role": "user", "content": "What is the remainder when 200 is divided by 9?"},
                          {"role": "assistant", "content": "<think>\n9 times 22 is 198, so 200 leaves 2.\n</think>"
                                                          "\n\nThe remainder is $\\boxed{3}$."}],
             "domain": "math", "gold": "2"}]
    src = tmp_path / "chats.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = curate(src, tmp_path / "out", shared_data, "--answer-field", "gold", "--source-field", "domain")
    assert result.returncode == 0, result.stderr
    assert sorted(outcome(tmp_path / "out").values()) == ["kept", "wrong_answer"]
    (kept,) = kept_rows(tmp_path / "out")
    assert [m["role"] for m in kept["messages"]] == ["user", "assistant"] and kept["source"] == "math"


# ---------------------------------------------------------------- s1K-style fields


def test_s1k_1_1_one_trace_per_teacher_with_its_grade(tmp_path, shared_data):
    """s1K-1.1's layout: solution, question, cot_type, source_type, metadata, gemini_thinking_trajectory,
    gemini_attempt, deepseek_thinking_trajectory, deepseek_attempt, gemini_grade, gemini_grade_reason,
    deepseek_grade, deepseek_grade_reason (all strings)."""
    row = {"solution": "128", "question": "Find the number of subsets of a set with seven elements.",
           "cot_type": "math", "source_type": "qq8933/AIME_1983_2024", "metadata": "{'Year': 1990}",
           "gemini_thinking_trajectory": "Each element is in or out, two choices each, so 2 to the 7th is 128.",
           "gemini_attempt": "There are $2^7 = \\boxed{128}$ subsets.",
           "deepseek_thinking_trajectory": "Every subset picks each of 7 elements or not: 2^7, which is 126.",
           "deepseek_attempt": "The count is $\\boxed{126}$.",
           "gemini_grade": "Yes", "gemini_grade_reason": "matches", "deepseek_grade": "No",
           "deepseek_grade_reason": "126 is not 128"}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "s1k.parquet")
    result = curate(tmp_path / "s1k.parquet", tmp_path / "out", shared_data)
    assert result.returncode == 0, result.stderr
    pid = problem_id(row["question"])
    assert outcome(tmp_path / "out") == {f"{pid}/gemini": "kept", f"{pid}/deepseek": "wrong_answer"}
    (kept,) = kept_rows(tmp_path / "out")
    assert kept["messages"][1]["content"] == (f"<think>\n{row['gemini_thinking_trajectory']}\n</think>\n\n"
                                              f"{row['gemini_attempt']}")
    report = json.loads((tmp_path / "out" / "curation_report.json").read_text())
    assert report["kept_by"]["teacher"] == {"gemini": 1} and report["kept_by"]["source"] == {"qq8933/AIME_1983_2024": 1}
    assert report["source_labels"] == {"source correct, curate correct": 1, "source wrong, curate wrong": 1}


def test_s1k_original_trajectory_list_and_one_teacher_by_flag(tmp_path, shared_data):
    """s1K (the first release): thinking_trajectories is a list of strings, attempt a string, `cot` null; a worked
    solution without a box is no reference, so its row is kept ungraded rather than graded against prose."""
    rows = [{"solution": "Write the integers as $2m+1$ and $2n+1$.\nTheir sum is $2m+2n+2 = 2(m+n+1)$,\n"
                         "a multiple of two, hence even.",
             "question": "Prove that the sum of two odd integers is even.", "cot_type": "math",
             "source_type": "AI-MO/NuminaMath-CoT/aops_forum", "metadata": "{}", "cot": None,
             "thinking_trajectories": ["Write them as 2m+1 and 2n+1; the sum is 2(m+n+1), which is even."],
             "attempt": "Let the integers be $2m+1$ and $2n+1$; their sum $2(m+n+1)$ is even."}]
    src = tmp_path / "s1k.jsonl"
    src.write_text(json.dumps(rows[0]) + "\n")
    result = curate(src, tmp_path / "out", shared_data, "--completion-field", "thinking_trajectories",
                    "--input-format", "s1k")
    assert result.returncode == 0, result.stderr
    assert "input format 's1k' (forced with --input-format)" in result.stderr
    assert list(outcome(tmp_path / "out").values()) == ["kept"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["input"]["format"] == "s1k" and manifest["input"]["mapping"]["answer"].startswith("column solution")


# ---------------------------------------------------------------- flat rows with mapped field names


def test_flat_rows_with_field_flags(tmp_path, shared_data):
    rows = [{"qid": "q1", "query": "What is 12 squared?", "model_answer": "<think>\n12 times 12 is 144.\n</think>\n\n"
             "$\\boxed{144}$", "gold": 144},
            {"qid": "q2", "query": "What is 13 squared?", "model_answer": "<think>\n13 times 13 is 169.\n</think>\n\n"
             "$\\boxed{196}$", "gold": 169}]
    src = tmp_path / "flat.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = curate(src, tmp_path / "out", shared_data, "--problem-field", "query", "--completion-field",
                    "model_answer", "--answer-field", "gold", "--id-field", "qid")
    assert result.returncode == 0, result.stderr
    assert "input format 'flat' (detected from the columns)" in result.stderr
    assert outcome(tmp_path / "out") == {"q1": "kept", "q2": "wrong_answer"}


def test_trl_conversational_prompt_completion_rows(tmp_path, shared_data):
    """TRL's conversational prompt-completion layout: `prompt` and `completion` are lists of {role, content}."""
    row = {"prompt": [{"role": "user", "content": "What is 15 percent of 200?"}],
           "completion": [{"role": "assistant", "content": "<think>\nA tenth is 20 and half of that is 10, so 30."
                                                           "\n</think>\n\nIt is $\\boxed{30}$."}],
           "answer": "30"}
    src = tmp_path / "trl.jsonl"
    src.write_text(json.dumps(row) + "\n")
    result = curate(src, tmp_path / "out", shared_data)
    assert result.returncode == 0, result.stderr
    (kept,) = kept_rows(tmp_path / "out")
    assert kept["messages"][0] == {"role": "user", "content": "What is 15 percent of 200?"}
    assert kept["messages"][1]["content"].endswith("It is $\\boxed{30}$.")
    assert kept["prompt_id"] == problem_id("What is 15 percent of 200?")


# ---------------------------------------------------------------- refused input: one line, exit 2


def _mixed_dir(tmp: Path) -> Path:
    d = tmp / "mixed"
    d.mkdir()
    pq.write_table(openr1_table(), d / "openr1_part1.parquet")
    pq.write_table(openr1_table(), d / "openr1_part2.parquet")
    (d / "stratos.jsonl").write_text(json.dumps(sharegpt_row("What is 1+1?", "1+1 is 2.", "$\\boxed{2}$")) + "\n")
    return d


def _flat_file(tmp: Path) -> Path:
    (tmp / "flat.jsonl").write_text(json.dumps({"problem": "What is 2+2?", "completion": "4"}) + "\n")
    return tmp / "flat.jsonl"


def _nothing_known(tmp: Path) -> Path:
    (tmp / "odd.jsonl").write_text(json.dumps({"text": "hello", "score": 1}) + "\n")
    return tmp / "odd.jsonl"


def _trace_missing_column(tmp: Path) -> Path:
    (tmp / "t.jsonl").write_text(json.dumps({"id": "a/0", "prompt_id": "a", "finish_reason": "stop"}) + "\n")
    return tmp / "t.jsonl"


@pytest.mark.parametrize(
    "make_src, extra, message",
    [
        (_mixed_dir, [], "mixes input formats (generations: openr1_part1.parquet, openr1_part2.parquet; "
                         "conversations: stratos.jsonl)"),
        (_flat_file, ["--answer-field", "gold"], "has no 'gold' field (fields: problem, completion); fix --answer-field"),
        (_flat_file, ["--input-format", "sharegpt"], "unknown --input-format 'sharegpt'; choose from trace, flat"),
        (_nothing_known, [], "matches no input format (columns: text, score)"),
        (_trace_missing_column, [], "missing column(s) completion (the record schemas are in distill/core/schema.py)"),
        (lambda tmp: "no-such-org/no-such-traces", [], "could not load traces 'no-such-org/no-such-traces'"),
    ],
)
def test_refused_input_is_one_line(make_src, extra, message, tmp_path, shared_data):
    result = curate(make_src(tmp_path), tmp_path / "out", shared_data, *extra)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr and "DESIGN.md" not in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- a hub dataset id


def test_hub_dataset_id(tmp_path, shared_data, monkeypatch):
    """A hub id is loaded through generate's hub loader, written once into the work dir and cut into units like a
    file; a re-run is a no-op. No network in tests: the download itself is stood in for by the same rows as a
    datasets.Dataset (what datasets.load_dataset returns), everything after it is the real stage."""
    import datasets

    from distill.curate import curate
    from distill.curate import formats as trace_formats
    from distill.curate.config import CurateConfig

    dataset = datasets.Dataset(openr1_table())
    calls = []
    monkeypatch.setattr(trace_formats, "hub_dataset", lambda *a, **k: calls.append(a) or dataset)
    cfg = CurateConfig(src="open-r1/OpenR1-Math-220k", out=str(tmp_path / "out"), eval_data_dir=str(shared_data),
                       num_proc=1, split="default")
    curate(cfg)
    assert calls[0] == ("open-r1/OpenR1-Math-220k", "default", None)
    assert outcome(tmp_path / "out")["9a7e-wheels/1"] == "kept"
    report = json.loads((tmp_path / "out" / "curation_report.json").read_text())
    assert report["input"]["format"] == "generations" and report["counts"]["input_rows"] == 5
    assert not (tmp_path / "out" / ".curate").exists()
    curate(cfg)  # the same dataset again: already complete
    assert json.loads((tmp_path / "out" / "curation_report.json").read_text())["finished_at"] == report["finished_at"]
