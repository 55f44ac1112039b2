"""Eval modes: reasoning on/off/auto, the chat template's own system prompt (said, recorded, droppable), and the
base model's eval beside the student's. The real CLI on tiny models; a non-reasoning instruct model is the tiny
model with its <think> tokens taken out and a Qwen2.5-Instruct-style template that adds a default system prompt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from distill.core.manifest import read_manifest, write_manifest
from distill.core.readers import iter_jsonl

QWEN_DEFAULT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# The system-turn logic of Qwen2.5-Instruct's template (tools left out): its default when no system message is given.
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\n" + QWEN_DEFAULT + "<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# SmolLM2-Instruct's: the default goes in before the first message unless that one is a system message.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
NOTICE = "the chat template adds a system prompt when the messages have none"


def make_instruct_model(tiny_model: Path, path: Path) -> Path:
    """The tiny model as an instruct model that knows nothing of <think>: the two think tokens removed from its
    tokenizer (their embedding rows stay, unused) and the Qwen2.5-Instruct-style template installed."""
    shutil.copytree(tiny_model, path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        data = json.loads((path / name).read_text())
        if "added_tokens" in data:
            data["added_tokens"] = [t for t in data["added_tokens"] if "think>" not in t["content"]]
        if "added_tokens_decoder" in data:
            data["added_tokens_decoder"] = {k: v for k, v in data["added_tokens_decoder"].items()
                                            if "think>" not in v["content"]}
        (path / name).write_text(json.dumps(data))
    (path / "chat_template.jinja").write_text(QWEN_TEMPLATE)
    return path


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _run_in_process(capsys, *args) -> tuple[int, str]:
    from distill.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err.strip()


def _eval(model: Path, out: Path, data: Path, *extra) -> list:
    return ["eval", "--model", model, "--tasks", "aime24,math500", "--backend", "hf", "--limit", "2", "--samples", "1",
            "--max-tokens", "6", "--data-dir", data, "--out", out, *extra]


@pytest.fixture(scope="module")
def instruct_eval(tmp_path_factory, tiny_model, shared_data):
    """The instruct model evaluated as a user would, reasoning auto: runs/eval/instruct (its default place)."""
    root = tmp_path_factory.mktemp("modes")
    model = make_instruct_model(tiny_model, root / "instruct")
    out = root / "runs" / "eval" / "instruct"
    proc = run_cli(*_eval(model, out, shared_data))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model, out, proc.stderr


# ---------------------------------------------------------------- rendering: found by rendering, not by name


def test_the_default_system_turn_is_found_by_rendering_with_and_without_one(tiny_model):
    from distill.core.chat_template import PromptRenderer, default_system, knows_think

    tok = _tokenizer(tiny_model)
    assert default_system(tok) is None  # ChatML without a default
    assert knows_think(tok) == "its tokenizer has <think> as a token of its own"
    user = [{"role": "user", "content": "What is 2 + 3?"}]
    for template, text in ((QWEN_TEMPLATE, QWEN_DEFAULT),
                           (SMOLLM2_TEMPLATE, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")):
        tok.chat_template = template
        found = default_system(tok)
        assert (found.text, found.block) == (text, f"<|im_start|>system\n{text}<|im_end|>\n")
        dropped = PromptRenderer(tok, "drop", say=False)
        assert dropped(user) == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
        assert dropped.record()["template_system_prompt"] == text and not dropped.record()["system_prompt_injected"]
        # a system message of the caller's own is never touched
        mine = [{"role": "system", "content": "Be brief."}, *user]
        assert dropped(mine) == tok.apply_chat_template(mine, tokenize=False, add_generation_prompt=True)
        assert PromptRenderer(tok, "keep", say=False)(user).startswith(f"<|im_start|>system\n{text}<|im_end|>")

    # Llama 3 style: a BOS before the system turn, which the cut must not split
    tok.add_special_tokens({"additional_special_tokens": ["<|begin_of_text|>", "<|start_header_id|>",
                                                         "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = (
        "{{- '<|begin_of_text|>' }}{%- if messages[0]['role'] == 'system' %}{%- set sys = messages[0]['content'] %}"
        "{%- set messages = messages[1:] %}{%- else %}{%- set sys = 'Answer briefly.' %}{%- endif %}"
        "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + sys + '<|eot_id|>' }}{%- for m in messages %}"
        "{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")
    assert PromptRenderer(tok, "drop", say=False)(user) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    # a template that refuses system messages cannot add one either
    tok.chat_template = ("{%- for m in messages %}{%- if m.role == 'system' %}{{ raise_exception('no system') }}"
                         "{%- endif %}{{- m.content }}{%- endfor %}")
    assert default_system(tok) is None


# ---------------------------------------------------------------- grading without a think block


def test_reasoning_off_reads_the_last_box_of_the_whole_response_and_truncates_at_the_budget():
    from distill.eval.math_hooks import process_results
    from distill.eval.metrics import score_problem, with_lengths

    responses = ("First \\boxed{4}, no: the answer is \\boxed{5}.", "I think... \\boxed{5}", "<think>\\boxed{5}")
    on = score_problem(responses, "5")
    assert on.correct == (False, False, False) and on.truncated == (True, True, True)
    off = with_lengths(score_problem(responses, "5", reasoning=False), [20, 64, 7], max_tokens=64)
    assert off.answers == ("5", "5", "5") and off.correct == (True, True, True)
    assert off.truncated == (False, True, False)  # only the one that used all 64 tokens was cut off
    doc = {"answer": "5"}
    assert process_results(doc, [list(responses)], reasoning=False) == {"pass@1": 1.0, "cons@k": 1.0, "pass@k": 1.0}
    assert process_results(doc, [list(responses)])["truncated"] == 1.0


def test_auto_reads_the_sft_manifest(tmp_path, tiny_model):
    from distill.eval.config import EvalConfig
    from distill.eval.prompting import reasoning_mode

    model = make_instruct_model(tiny_model, tmp_path / "student")
    tok = _tokenizer(model)
    cfg = EvalConfig(model=str(model))
    assert reasoning_mode(cfg, tok, read_manifest(model))[0] == "off"
    write_manifest(model, "sft", config={"student": "x"}, counts={"examples": 8, "reasoning_rows": 6})
    assert reasoning_mode(cfg, tok, read_manifest(model)) == (
        "on", "its sft manifest: trained on 6 of 8 examples with a think block")
    write_manifest(model, "sft", config={"student": "x"}, counts={"examples": 8, "reasoning_rows": 0})
    assert reasoning_mode(cfg, tok, read_manifest(model))[0] == "off"
    # an older sft manifest, without the count: its lineage through curate means reasoning traces
    write_manifest(tmp_path / "data", "curate", config={})
    write_manifest(model, "sft", config={"student": "x"}, inputs=[tmp_path / "data"])
    assert reasoning_mode(cfg, tok, read_manifest(model)) == (
        "on", "its sft manifest: trained on curate output (reasoning traces)")
    # a template that opens <think> in its generation prompt decides before anything else
    tok.chat_template = QWEN_TEMPLATE.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'")
    assert reasoning_mode(EvalConfig(model=str(model)), tok)[0] == "on"
    assert reasoning_mode(EvalConfig(model=str(model), reasoning="off"), tok) == ("off", "--reasoning off")
    assert reasoning_mode(EvalConfig(model=str(model), think_prefill=True), tok) == ("on", "--think-prefill")


# ---------------------------------------------------------------- the real CLI


def test_a_non_reasoning_model_is_evaluated_without_think_and_its_system_prompt_is_on_record(instruct_eval,
                                                                                              shared_data):
    from distill.eval.math_hooks import doc_to_text

    model, out, stderr = instruct_eval
    assert stderr.count(NOTICE) == 1 and QWEN_DEFAULT in stderr  # said once, for two tasks
    assert "reasoning off: neither its chat template nor its tokenizer knows <think>" in stderr
    results = json.loads((out / "results.json").read_text())
    p = results["protocol"]
    assert (p["reasoning"], p["reasoning_requested"], p["think_prefill"]) == ("off", "auto", None)
    assert (p["system_prompt"], p["template_system_prompt"], p["default_system"]) == (QWEN_DEFAULT, QWEN_DEFAULT, "keep")
    assert "whole response" in p["grader"]

    # the protocol block's prompt is the one sent, and the template's own rendering of the first problem
    rows = list(iter_jsonl(out / "samples" / "aime24.jsonl"))
    first = next(iter_jsonl(shared_data / "aime24.jsonl"))
    expected = _tokenizer(model).apply_chat_template([{"role": "user", "content": doc_to_text(first)}],
                                                     tokenize=False, add_generation_prompt=True)
    assert p["rendered_prompt"] == rows[0]["prompt"] == expected
    assert expected.startswith(f"<|im_start|>system\n{QWEN_DEFAULT}<|im_end|>\n<|im_start|>user\n")
    assert expected.endswith("<|im_start|>assistant\n") and p["rendered_prompt_of"] == f"aime24 problem {first['id']}"
    for name in ("aime24", "math500"):
        rows = list(iter_jsonl(out / "samples" / f"{name}.jsonl"))
        assert all(r["truncated"] == (r["tokens"] >= 6) for r in rows)  # cut off = used the budget, not "no </think>"
        assert results["tasks"][name]["truncated"] == sum(r["truncated"] for r in rows) / len(rows)
    assert read_manifest(out)["prompt_format"]["system_prompt"] == QWEN_DEFAULT
    report = (out / "report.md").read_text()
    assert "reasoning **off** (neither its chat template" in report
    assert f"`{QWEN_DEFAULT!r}`, the chat template's own default, kept" in report
    assert "added by the chat template (published: none)" in report and expected.rstrip("\n") in report


def test_dropping_the_default_system_prompt_and_forcing_reasoning_on(instruct_eval, shared_data, tmp_path, capsys):
    model, out, _ = instruct_eval
    # the same OUT with another system prompt is another protocol
    code, err = _run_in_process(capsys, *_eval(model, out, shared_data, "--default-system", "drop"))
    assert code == 2 and err.count("\n") == 0 and f"system_prompt: {QWEN_DEFAULT!r} -> None" in err

    other = tmp_path / "on-drop"
    code, err = _run_in_process(capsys, *_eval(model, other, shared_data, "--default-system", "drop",
                                               "--reasoning", "on", "--set", "tasks=[aime24]"))
    assert code == 0, err
    assert "it is cut out (default_system drop)" in err and "reasoning on: --reasoning on" in err
    p = json.loads((other / "results.json").read_text())["protocol"]
    assert (p["reasoning"], p["system_prompt"], p["template_system_prompt"]) == ("on", None, QWEN_DEFAULT)
    rows = list(iter_jsonl(other / "samples" / "aime24.jsonl"))
    kept = next(iter_jsonl(out / "samples" / "aime24.jsonl"))["prompt"]
    assert p["rendered_prompt"] == rows[0]["prompt"] == kept.replace(
        f"<|im_start|>system\n{QWEN_DEFAULT}<|im_end|>\n", "") + "<think>\n"
    assert all(r["truncated"] == ("</think>" not in r["response"]) for r in rows)
    assert "the chat template's default" in (other / "report.md").read_text() and "was cut out" in (
        other / "report.md").read_text()

    code, err = _run_in_process(capsys, *_eval(model, tmp_path / "x", shared_data, "--reasoning", "off",
                                               "--think-prefill"))
    assert code == 2 and err.count("\n") == 0 and "--reasoning off" in err


def test_the_base_model_eval_sits_beside_the_student(instruct_eval, tiny_model, shared_data, capsys):
    base, base_out, _ = instruct_eval
    student = base_out.parent.parent.parent / "student"
    shutil.copytree(tiny_model, student)
    write_manifest(student, "sft", config={"student": str(base), "recipe": "tiny"},
                   counts={"examples": 4, "reasoning_rows": 4})
    out = base_out.parent / "student"  # runs/eval/student, beside runs/eval/instruct
    code, err = _run_in_process(capsys, *_eval(student, out, shared_data))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"]["reasoning_why"] == "its sft manifest: trained on 4 of 4 examples with a think block"
    baseline = results["baseline"]
    assert baseline["path"] == str(base_out.resolve()) and "sft manifest's base model" in baseline["found_by"]
    assert baseline["protocol"]["reasoning"] == "off"
    base_results = json.loads((base_out / "results.json").read_text())
    assert baseline["tasks"]["math500"]["pass@1"] == base_results["tasks"]["math500"]["pass@1"]
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| task"))
    assert header.endswith("| mean tokens | base: instruct | published student | DeepSeek-R1 (published) |")
    base_math = base_results["tasks"]["math500"]
    row = next(line for line in report.splitlines() if line.startswith("| math500"))
    assert f"| {100 * base_math['pass@1']:.1f} ± {100 * base_math['pass@1_stderr']:.1f} |" in row
    assert "Base model `" in report and "reasoning off" in report
    assert "base model: system prompt" in report  # the base had its template's system prompt, the student none
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # named with --baseline, and a dir that holds no eval is a one-line error
    code, err = _run_in_process(capsys, *_eval(student, out, shared_data, "--baseline", base_out))
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["baseline"]["found_by"] == "--baseline"
    code, err = _run_in_process(capsys, *_eval(student, out, shared_data, "--baseline", student))
    assert code == 2 and err.count("\n") == 0 and "holds no results.json" in err


def test_generate_says_and_records_the_template_system_prompt(instruct_eval, tmp_path):
    model, _, _ = instruct_eval
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                               for i in range(3)))
    for policy in ("keep", "drop"):
        out = tmp_path / policy
        proc = run_cli("generate", "--prompts", prompts, "--out", out, "--backend", "transformers", "--model", model,
                       "--max-tokens", "4", "--default-system", policy)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stderr.count(NOTICE) == 1
        record = read_manifest(out)["prompt_format"]
        assert record["template_system_prompt"] == QWEN_DEFAULT and record["default_system"] == policy
        assert (QWEN_DEFAULT in record["first_prompt"]) == (policy == "keep")
        assert record["first_prompt"].endswith("What is 0 + 1?\nPlease reason step by step, and put your final "
                                               "answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
