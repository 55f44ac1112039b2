"""`distill sft` on tiny models, CPU only: the real CLI from a curate-like dir to a loadable student that stops.

The data are a few hundred short synthetic R1-style traces ("<think>\\n...\\n</think>\\n\\nThe answer is
$\\boxed{7}$.") written as a curate output dir (SFT_EXAMPLE shards + manifest whose lineage holds a generate
stage), so these tests do not depend on the curate stage's code.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, free_port, run_cli

from distill.core.errors import DistillError

TINY = REPO / "recipes" / "tiny.yaml"


# ---------------------------------------------------------------- fixtures


def make_curate_dir(root: Path, n: int, seed: int = 0, prefix: str = "p") -> Path:
    """A generate dir (manifest only) and a curate dir with n short addition traces."""
    from distill.core.manifest import write_manifest
    from distill.core.protocol import user_prompt
    from distill.core.schema import SFT_EXAMPLE
    from distill.core.shards import ShardWriter
    from distill.core.teachers import R1_PROMPT_SUFFIX

    rng = random.Random(seed)
    gen, cur = root / "gen", root / "data"
    write_manifest(gen, "generate", {"teacher": "deepseek-r1", "model": "deepseek-ai/DeepSeek-R1"},
                   counts={"rows": n})
    with ShardWriter(cur / "data", "train", SFT_EXAMPLE, shard_rows=max(1, n // 2)) as writer:
        for i in range(n):
            a, b = rng.randint(0, 49), rng.randint(0, 49)
            answer = (f"<think>\nI need to add {a} and {b}. {a} plus {b} is {a + b}.\n</think>\n\n"
                      f"The answer is $\\boxed{{{a + b}}}$.")
            writer.add({"id": f"{prefix}{i}/0", "prompt_id": f"{prefix}{i}", "source": "synthetic", "num_tokens": 40,
                        "messages": [{"role": "user", "content": user_prompt(f"What is {a} + {b}?", R1_PROMPT_SUFFIX)},
                                     {"role": "assistant", "content": answer}]})
    write_manifest(cur, "curate", {"filters": ["synthetic"]}, inputs=[gen], counts={"rows": n})
    return cur


@pytest.fixture(scope="module")
def curate_dir(tmp_path_factory) -> Path:
    return make_curate_dir(tmp_path_factory.mktemp("curate"), 300)


@pytest.fixture(scope="module")
def trained(curate_dir, tmp_path_factory):
    """One real `distill sft recipes/tiny.yaml` run, shared by the tests that look at its outcome."""
    out = tmp_path_factory.mktemp("sft") / "tiny"
    args = ("sft", TINY, "--set", f"datasets.0.path={curate_dir}", "--output-dir", out, "--set", "sft.num_train_epochs=10")
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc, args


def tiny_recipe(model_dir: Path, data: Path, out: Path, *overrides: str):
    """recipes/tiny.yaml on a pretrained tiny model, a few quick steps."""
    from distill.sft.recipe import load_recipe

    return load_recipe(TINY, [f"model.name={model_dir}", "model.init=pretrained", "model.tokenizer=null",
                              "model.config={}", f"datasets.0.path={data}", f"output_dir={out}", *overrides])


def tokenizer_with_template():
    from transformers import AutoTokenizer

    from distill.sft.student_template import apply_template, get_template

    tok = AutoTokenizer.from_pretrained(REPO / "tests" / "assets" / "tiny_tokenizer")
    return tok, apply_template(tok, get_template("chatml_r1"))


def example(a: int = 2, b: int = 3) -> list[dict[str, str]]:
    from distill.core.protocol import user_prompt
    from distill.core.teachers import R1_PROMPT_SUFFIX

    return [{"role": "user", "content": user_prompt(f"What is {a} + {b}?", R1_PROMPT_SUFFIX)},
            {"role": "assistant", "content": f"<think>\n{a} plus {b} is {a + b}.\n</think>\n\n$\\boxed{{{a + b}}}$"}]


# ---------------------------------------------------------------- end to end through the CLI


@pytest.mark.slow
def test_tiny_recipe_trains_end_to_end_from_curate_output(trained, curate_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.sft.student_template import get_template

    out, proc, _ = trained
    state = json.loads(sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
                       .joinpath("trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert losses[-1] < 0.4 * losses[0], losses  # the loss falls
    assert any("tokens_per_s" in h for h in state["log_history"])
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == get_template("chatml_r1").text
    assert tok.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids("<|im_end|>")
    assert model.config.eos_token_id == tok.eos_token_id
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "sft" and manifest["status"] == "complete"
    assert manifest["config"]["recipe"] == "tiny" and manifest["config"]["student"] == "qwen2"
    assert [e["stage"] for e in manifest["lineage"]] == ["curate", "generate"]
    assert manifest["lineage"][1]["config"]["teacher"] == "deepseek-r1"
    assert manifest["inputs"][0]["path"] == str(curate_dir.resolve())
    assert manifest["counts"]["examples"] == 300 and manifest["counts"]["steps"] == state["global_step"]
    assert (out / "training_curve.png").stat().st_size > 1000
    assert "sft ->" in proc.stdout and "loss first -> last" in proc.stdout
    # one progress line carries the loss; transformers' raw log dicts are not printed over it
    assert re.search(r"sft: \d+/\d+ steps .*\| loss \d", proc.stderr), proc.stderr[-2000:]
    assert "{'loss'" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_trained_student_stops_with_eos(trained):
    """A student trained a few hundred steps on short traces ends its answer with EOS, prompted the way eval
    prompts it (chat template with the generation prompt, which already ends in <think>\\n)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _ = trained
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    for a, b in [(12, 30), (7, 41), (25, 25)]:
        prompt = tok.apply_chat_template(example(a, b)[:1], add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)
        assert tok.decode(prompt["input_ids"][0]).endswith("<think>\n")
        new = model.generate(**prompt, max_new_tokens=120, do_sample=False)[0, prompt["input_ids"].shape[1]:]
        assert tok.eos_token_id in new.tolist(), tok.decode(new)
        text = tok.decode(new)
        assert "</think>" in text and "\\boxed{" in text, text


@pytest.mark.slow
def test_rerun_of_a_finished_run_does_nothing(trained):
    out, _, args = trained
    before = (out / "model.safetensors").stat().st_mtime_ns
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nothing to do" in proc.stderr
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    # the same dataset spelled relative to another working directory is the same run
    curate_dir = Path(args[args.index("--set") + 1].split("=", 1)[1])
    relative = ("sft", TINY, "--set", f"datasets.0.path={curate_dir.name}", *args[4:],
                "--set", f"model.tokenizer={REPO / 'tests' / 'assets' / 'tiny_tokenizer'}")
    proc = run_cli(*relative, cwd=curate_dir.parent)
    assert proc.returncode == 0 and "nothing to do" in proc.stderr, proc.stderr[-2000:]
    assert (out / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.slow
def test_the_same_recipe_trains_the_same_student_from_scratch(curate_dir, tmp_path):
    """A student from config starts from weights drawn with the recipe's seed: the same recipe, the same bytes."""
    def train(name, *overrides):
        out = tmp_path / name
        proc = run_cli("sft", TINY, "--set", f"datasets.0.path={curate_dir}", "--output-dir", out,
                       "--set", "sft.max_steps=2", "--set", "sft.save_strategy=no", *overrides)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return (out / "model.safetensors").read_bytes()

    first = train("a")
    assert train("b") == first
    assert train("c", "--set", "sft.seed=1") != first


# ---------------------------------------------------------------- what training changes


def test_every_parameter_changes(tiny_model, curate_dir, tmp_path):
    from safetensors.torch import load_file

    from distill.sft import sft

    out = sft(tiny_recipe(tiny_model, curate_dir, tmp_path / "full", "sft.max_steps=3", "sft.save_strategy=no",
                          "sft.learning_rate=1e-2"))
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    unchanged = [k for k in before if (before[k] == after[k]).all()]
    assert not unchanged, f"parameters that did not train: {unchanged}"


def test_lora_changes_only_adapters(tiny_model, curate_dir, tmp_path):
    from safetensors.torch import load_file

    from distill.sft import sft

    out = sft(tiny_recipe(tiny_model, curate_dir, tmp_path / "lora", "sft.max_steps=3", "sft.save_strategy=no",
                          "sft.learning_rate=1e-2", "lora.r=4", "lora.alpha=8"))
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all(k.count("lora_") for k in adapter)
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at zero: it trained
    before, merged = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    for name, weight in before.items():
        adapted = name.endswith("proj.weight")  # every linear layer but the (tied) head
        assert (merged[name] != weight).any() == adapted, name


# ---------------------------------------------------------------- masking and packing


def test_prompt_tokens_carry_ignore_label():
    from distill.sft.student_template import IGNORE, tokenize_example

    tok, eos_id = tokenizer_with_template()
    messages = example()
    ids, labels = tokenize_example(tok, messages, eos_id)
    prompt = tok.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and IGNORE not in labels[n_prompt:]
    assert ids[-1] == eos_id  # trained to stop; nothing after the EOS
    assert tok.decode(ids[n_prompt:]) == messages[1]["content"].removeprefix("<think>\n") + "<|im_end|>"


def test_dataset_labels_match_prompts(curate_dir, tmp_path):
    from distill.sft.data import build_datasets
    from distill.sft.recipe import DatasetSpec

    tok, eos_id = tokenizer_with_template()
    data = build_datasets([DatasetSpec(path=str(curate_dir))], tok, eos_id, 512, tmp_path)
    for row in data.train.select(range(20)):
        first = next(i for i, t in enumerate(row["labels"]) if t != -100)
        assert tok.decode(row["input_ids"][:first]).endswith("<|im_start|>assistant\n<think>\n")
        assert row["labels"][-1] == eos_id
    assert data.stats["examples"] == 300 and data.stats["trained_tokens"] < data.stats["tokens"]


def test_mixture_weights_and_prompt_level_eval_split(tmp_path):
    from distill.sft.data import build_datasets
    from distill.sft.recipe import DatasetSpec

    a = make_curate_dir(tmp_path / "a", 40, seed=1, prefix="a")
    b = make_curate_dir(tmp_path / "b", 20, seed=2, prefix="b")
    tok, eos_id = tokenizer_with_template()
    data = build_datasets([DatasetSpec(path=str(a), weight=0.5, eval_size=0.25), DatasetSpec(path=str(b), weight=2)],
                          tok, eos_id, 512, tmp_path / "cache")
    rows = {d["path"]: d for d in data.stats["datasets"]}
    assert rows[str(a)]["eval_rows"] == 10 and rows[str(a)]["train_rows"] == 15  # (40 - 10) * 0.5
    assert rows[str(b)]["train_rows"] == 40  # every row twice
    # every curated row closes its think block: what eval's --reasoning auto reads from the manifest
    assert (rows[str(a)]["reasoning_rows"], rows[str(b)]["reasoning_rows"], data.stats["reasoning_rows"]) == (15, 40, 55)
    assert len(data.train) == 55 and len(data.eval) == 10


def packed_batch(tok, eos_id, n_docs: int = 4):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from distill.sft.student_template import tokenize_example

    docs = [tokenize_example(tok, example(a, 3 * a + 1), eos_id) for a in range(1, n_docs + 1)]
    docs[1] = (docs[1][0] * 2, docs[1][1] * 2)  # documents of different lengths
    rows = [{"input_ids": ids, "labels": labels, "seq_lengths": [len(ids)]} for ids, labels in docs]
    collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)
    return docs, collate(rows)


def test_packed_batch_loss_equals_per_document_loss(tiny_model):
    """TRL's padding-free packed batch through distill_varlen gives the per-document loss and logits."""
    import torch
    from transformers import AutoModelForCausalLM

    from distill.sft.attention import register

    tok, eos_id = tokenizer_with_template()
    docs, batch = packed_batch(tok, eos_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=register()).eval()
    with torch.no_grad():
        packed = model(**batch, use_cache=False)
        per_doc_logits, loss_sum, n_trained = [], 0.0, 0
        for ids, labels in docs:
            out = model(input_ids=torch.tensor([ids]))
            per_doc_logits.append(out.logits[0])
            shifted = torch.tensor(labels[1:])
            loss_sum += torch.nn.functional.cross_entropy(out.logits[0, :-1], shifted, reduction="sum").item()
            n_trained += int((shifted != -100).sum())
    reference = torch.cat(per_doc_logits)
    assert torch.allclose(packed.logits[0], reference, atol=1e-5, rtol=1e-4)
    assert packed.loss.item() == pytest.approx(loss_sum / n_trained, rel=1e-5)


def test_sdpa_with_an_attention_mask_leaks_across_packed_documents(tiny_model):
    """The bug distill_varlen avoids: SDPA given the packed row's all-ones attention mask (what a padded collator
    sends) lets each document attend to the ones before it, even with position ids restarting per document."""
    import torch
    from transformers import AutoModelForCausalLM

    tok, eos_id = tokenizer_with_template()
    docs, batch = packed_batch(tok, eos_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    with torch.no_grad():
        reference = torch.cat([model(input_ids=torch.tensor([ids])).logits[0] for ids, _ in docs])
        leaky = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                      attention_mask=torch.ones_like(batch["input_ids"]), use_cache=False).logits[0]
    first = len(docs[0][0])
    assert torch.allclose(leaky[:first], reference[:first], atol=1e-5)  # the first document has nothing before it
    assert ((leaky - reference).norm() / reference.norm()).item() > 0.05


def test_document_attention_paths_agree():
    """The stacked and one-by-one CPU paths (chosen by how uneven the lengths are) and a sliding window."""
    import torch
    import torch.nn.functional as F

    from distill.sft.attention import per_document_attention

    torch.manual_seed(0)
    for lengths in ([5, 9, 7], [3, 60, 2]):
        cu = torch.tensor([0] + lengths).cumsum(0).to(torch.int32)
        q, k, v = torch.randn(1, 4, sum(lengths), 8), torch.randn(1, 2, sum(lengths), 8), torch.randn(1, 2, sum(lengths), 8)
        out = per_document_attention(q, k, v, cu, 8**-0.5, None, 0.0)
        for s, e in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=False):
            ref = F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], is_causal=True, enable_gqa=True)
            assert torch.allclose(out[s:e], ref[0].transpose(0, 1), atol=1e-6)
    windowed = per_document_attention(q, k, v, cu, 8**-0.5, 4, 0.0)
    assert not torch.allclose(windowed, out)


# ---------------------------------------------------------------- resume after SIGKILL


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_checkpoint(tiny_model, curate_dir, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "distill", "sft", str(TINY), "--set", f"model.name={tiny_model}",
            "--set", "model.init=pretrained", "--set", "model.tokenizer=null", "--set", "model.config={}",
            "--set", f"datasets.0.path={curate_dir}", "--output-dir", str(out), "--set", "sft.max_steps=60",
            "--set", "sft.save_steps=10", "--set", "sft.logging_steps=1"]
    victim = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while not (out / "checkpoint-20" / "trainer_state.json").exists() and victim.poll() is None:
        assert time.time() < deadline, "no checkpoint-20 within 5 minutes"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (out / "model.safetensors").exists(), "the run finished before it could be killed"
    proc = run_cli(*args[3:], env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed_from = int(proc.stderr.split("resuming from ")[1].split("checkpoint-")[1].split()[0])
    assert resumed_from >= 20
    state = json.loads((out / "checkpoint-60" / "trainer_state.json").read_text())
    assert state["global_step"] == 60
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == list(range(1, 61))  # every step once: nothing lost, nothing repeated
    assert json.loads((out / "manifest.json").read_text())["counts"]["steps"] == 60


# ---------------------------------------------------------------- multi-process launch


@pytest.mark.slow
def test_relaunches_itself_under_accelerate_with_two_processes(tiny_model, curate_dir, tmp_path):
    config = tmp_path / "cpu2.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_machines: 1\n"
                      "num_processes: 2\nmachine_rank: 0\nmixed_precision: 'no'\nuse_cpu: true\n")
    out = tmp_path / "ddp"
    proc = run_cli("sft", TINY, "--set", f"model.name={tiny_model}", "--set", "model.init=pretrained",
                   "--set", "model.tokenizer=null", "--set", "model.config={}", "--set", f"datasets.0.path={curate_dir}",
                   "--output-dir", out, "--set", "sft.max_steps=6", "--set", "sft.save_strategy=no",
                   "--set", f"launch.accelerate_config={config}", "--set", "launch.num_processes=2",
                   # not accelerate's fixed 29500: any other torch.distributed job on the host would collide
                   "--set", f"launch.main_process_port={free_port()}", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launching: accelerate.commands.launch" in proc.stderr and "--num_processes 2" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["steps"] == 6
    assert (out / "recipe.yaml").exists() and (out / "model.safetensors").exists()


# ---------------------------------------------------------------- memory estimate


def test_memory_estimate_warns_and_names_the_fix(tmp_path, caplog):
    """A 7B-shaped model at 32K on one 80 GB GPU does not fit by full fine-tuning; LoRA makes it fit."""
    import logging

    from transformers import Qwen2Config

    from distill.sft.recipe import load_recipe
    from distill.sft.run import check_memory, resolve_args

    Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                num_key_value_heads=4, vocab_size=152064).save_pretrained(tmp_path / "q7")
    overrides = [f"model.name={tmp_path / 'q7'}", "launch.accelerate_config=null", "launch.num_processes=1",
                 "launch.gpu_memory_gb=80", "sft.max_length=32768"]
    logger = logging.getLogger("distill")  # distill's logger does not propagate to the root: listen on it
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="distill")
    try:
        recipe = load_recipe(REPO / "recipes" / "qwen7b.yaml", overrides)
        check_memory(recipe, resolve_args(recipe), {})
        warning = next(r.getMessage() for r in caplog.records if "will likely not fit" in r.getMessage())
        assert "LoRA" in warning and "GiB" in warning
        caplog.clear()
        recipe = load_recipe(REPO / "recipes" / "qwen7b.yaml", overrides + ["lora.r=64"])
        check_memory(recipe, resolve_args(recipe), {})
        assert any("memory estimate:" in r.getMessage() for r in caplog.records)
        assert not any("will likely not fit" in r.getMessage() for r in caplog.records)
    finally:
        logger.removeHandler(caplog.handler)


# ---------------------------------------------------------------- bad input: one-line errors


def test_unknown_key_is_a_one_line_cli_error(curate_dir, tmp_path):
    proc = run_cli("sft", TINY, "--set", "model.nme=qwen2", "--set", f"datasets.0.path={curate_dir}")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: unknown key model.nme") and "valid keys: name" in proc.stderr


def write_bad_shard(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["x"], "prompt_id": ["x"], "text": ["no messages here"]}),
                   root / "data" / "train-00000.parquet")
    return root


def write_empty_curate_output(root: Path) -> Path:
    """What curate writes when no trace survives: a valid, empty shard and a manifest that counts the input."""
    import pyarrow.parquet as pq

    from distill.core.manifest import write_manifest
    from distill.core.schema import SFT_EXAMPLE

    (root / "data").mkdir(parents=True)
    pq.write_table(SFT_EXAMPLE.empty_table(), root / "data" / "train-00000.parquet")
    write_manifest(root, "curate", {}, counts={"input_rows": 5, "kept": 0})
    return root


@pytest.mark.parametrize("overrides, message", [
    (["sft.learning_rat=1e-5"], "unknown key sft.learning_rat (did you mean learning_rate?)"),
    (["sft.output_dir=x"], "sft.output_dir is managed by distill"),
    (["datasets.0.path=/nonexistent/curated"], "dataset '/nonexistent/curated' not found"),
    (["datasets.0.path={gen}"], "run `distill curate"),
    (["datasets.0.path={bad}"], "does not match the sft_example schema: missing column(s) source, messages"),
    (["datasets.0.path={empty}"], "has no training examples (curate kept 0 of 5 traces;"),
    (["launch.accelerate_config=/nonexistent.yaml"], "launch.accelerate_config '/nonexistent.yaml' not found"),
    (["launch.accelerate_config={acc_bogus}"], "is invalid"),
    (["launch.accelerate_config={acc_unknown}"], "unknown keys"),
    (["datasets.0.weight=0"], "datasets.0.weight must be > 0"),
    (["lora.r=8"], "lora adapts pretrained weights"),
])
def test_bad_input_is_a_one_line_error(overrides, message, curate_dir, tmp_path):
    from distill.sft import sft
    from distill.sft.recipe import load_recipe

    paths = {"gen": curate_dir.parent / "gen", "bad": write_bad_shard(tmp_path / "bad"),
             "empty": write_empty_curate_output(tmp_path / "empty"),
             "acc_bogus": tmp_path / "bogus.yaml", "acc_unknown": tmp_path / "unknown.yaml"}
    paths["acc_bogus"].write_text("distributed_type: BOGUS\n")
    paths["acc_unknown"].write_text("distributed_type: MULTI_GPU\nnum_gpus_per_node: 8\n")
    base = [f"datasets.0.path={curate_dir}", f"output_dir={tmp_path / 'out'}"]
    with pytest.raises(DistillError) as err:
        sft(load_recipe(TINY, base + [o.format(**paths) for o in overrides]))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_templates_render_what_eval_sends():
    """Both packaged templates: the generation prompt is a prefix of the rendered training example and ends in
    "<think>\\n" (so eval does not prefill it twice), and the assistant text is kept verbatim."""
    from distill.core.chat_template import TEMPLATES, get_template

    tok, _ = tokenizer_with_template()
    tok.bos_token = "<|endoftext|>"
    for name in TEMPLATES:
        tok.chat_template = get_template(name).text
        messages = example()
        prompt = tok.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template(messages, tokenize=False)
        assert prompt.endswith("<think>\n") and full.startswith(prompt), name
        assert messages[1]["content"] in full and messages[0]["content"] in full, name


def test_a_template_that_strips_think_is_refused():
    from distill.sft.student_template import tokenize_example

    tok, eos_id = tokenizer_with_template()
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.split('</think>')[-1] }}"
                         "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(DistillError, match="strip"):
        tokenize_example(tok, example(), eos_id)


def test_a_model_built_from_a_config_gets_the_tokenizer_vocabulary(tmp_path):
    from distill.sft.recipe import load_recipe
    from distill.sft.run import load_model, load_tokenizer

    recipe = load_recipe(TINY, ["datasets.0.path=x", f"output_dir={tmp_path}"])
    tok, eos_id = load_tokenizer(recipe.model)
    model = load_model(recipe.model, {"use_cpu": True}, tok, eos_id)
    assert model.config.vocab_size == len(tok) and model.config.num_hidden_layers == 2
    assert model.generation_config.eos_token_id == [eos_id] and model.config._attn_implementation == "distill_varlen"


# ---------------------------------------------------------------- the CUDA path


def fake_varlen_attn(with_gqa: bool):
    """Stands in for torch.nn.attention.varlen.varlen_attn with the same contract ([tokens, heads, dim], causal
    through window_size (-1, 0)), so the glue around the kernel is tested on CPU."""
    import torch.nn.functional as F

    def varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, window_size=(-1, -1), **kw):
        assert window_size == (-1, 0) and q.dim() == 3 and cu_q is cu_k and max_q == int(cu_q.diff().max())
        assert kw.get("enable_gqa", False) == (with_gqa and k.shape[1] != q.shape[1])
        assert with_gqa or k.shape[1] == q.shape[1], "without enable_gqa the key/value heads must be repeated"
        outs = []
        for s, e in zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), strict=False):
            outs.append(F.scaled_dot_product_attention(q[s:e].transpose(0, 1), k[s:e].transpose(0, 1),
                                                       v[s:e].transpose(0, 1), is_causal=True, scale=scale,
                                                       enable_gqa=k.shape[1] != q.shape[1]).transpose(0, 1))
        import torch

        return torch.cat(outs)

    return varlen_attn


@pytest.mark.parametrize("with_gqa", [True, False], ids=["enable_gqa", "torch-2.11"])
def test_varlen_kernel_glue(with_gqa, tiny_model, monkeypatch):
    import inspect

    import torch
    from transformers import AutoModelForCausalLM

    from distill.sft import attention as packing

    kernel = fake_varlen_attn(with_gqa)
    params = set(inspect.signature(kernel).parameters) | ({"enable_gqa"} if with_gqa else set())
    monkeypatch.setattr(packing, "_varlen_api", lambda: (kernel, params))
    monkeypatch.setattr(packing, "use_varlen", lambda query: True)
    tok, eos_id = tokenizer_with_template()
    docs, batch = packed_batch(tok, eos_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=packing.register()).eval()
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits[0]
        reference = torch.cat([model(input_ids=torch.tensor([ids])).logits[0] for ids, _ in docs])
    assert torch.allclose(packed, reference, atol=1e-5, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_varlen_flash_attention_on_gpu(tiny_model):
    """The real kernel: a packed bf16 row against each document alone, within bf16 noise."""
    import torch
    from transformers import AutoModelForCausalLM

    from distill.sft.attention import register

    tok, eos_id = tokenizer_with_template()
    docs, batch = packed_batch(tok, eos_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=register(),
                                                 dtype=torch.bfloat16).cuda().eval()
    inputs = {k: v.cuda() if hasattr(v, "cuda") else v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed = model(**inputs, use_cache=False).logits[0].float()
        reference = torch.cat([model(input_ids=torch.tensor([ids]).cuda()).logits[0] for ids, _ in docs]).float()
    assert ((packed - reference).norm() / reference.norm()).item() < 0.02


def test_throughput_benchmark_runs_on_cpu():
    """benchmarks/sft_throughput.py: distill's path and plain TRL's, tiny shape, CPU (the GPU figures come from
    the same code on an H100; see benchmarks/README.md)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sft_throughput", REPO / "benchmarks" / "sft_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    common = ["--arch", "tiny", "--max-length", "256", "--steps", "3", "--warmup-steps", "1", "--docs", "24",
              "--mean-len", "80"]
    results = {}
    for variant in ("ours", "trl-packed"):
        results[variant] = result = bench.run_variant(bench.parse_args(common + ["--worker", variant]))
        assert result["tokens_per_s"] > 0 and result["steps_timed"] == 2
        assert result["logit_rel_err"] < 1e-4, result
    assert results["ours"]["attention"] == "distill_varlen" and results["trl-packed"]["attention"] == "sdpa"


def test_selective_checkpointing_changes_memory_not_math(tiny_model, curate_dir, tmp_path):
    """checkpoint_layers=0.5 recomputes every other layer and trains to the very same weights."""
    import torch

    from distill.sft.run import build_trainer, load_data, load_model, load_tokenizer, resolve_args, sft_config

    weights, flags = {}, {}
    for fraction in (1.0, 0.5):
        out = tmp_path / str(fraction)
        recipe = tiny_recipe(tiny_model, curate_dir, out, "sft.max_steps=2", "sft.save_strategy=no",
                             "sft.gradient_checkpointing=true", "sft.learning_rate=1e-2", f"checkpoint_layers={fraction}")
        args = resolve_args(recipe)
        tok, eos_id = load_tokenizer(recipe.model)
        model = load_model(recipe.model, args, tok, eos_id)
        trainer = build_trainer(recipe, sft_config(args, out), model, tok, load_data(recipe, tok, eos_id, args, out).train)
        trainer.train()
        flags[fraction] = [layer.gradient_checkpointing for layer in model.model.layers]
        weights[fraction] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert flags == {1.0: [True, True], 0.5: [False, True]}
    assert all(torch.allclose(weights[1.0][k], weights[0.5][k], atol=1e-6) for k in weights[1.0])
