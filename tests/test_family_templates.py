"""The packaged R1 templates of each model family (chatml_r1, llama3_r1, gemma_r1, mistral_r1) on a tokenizer of
that family: a base model's tokenizer (no template of its own, another EOS) trains with the family's turn format,
the loss covers exactly the assistant turn and its end-of-turn token, and the generation prompt is what eval sends.

The tokenizers are tiny byte-level BPEs trained here, in memory, with the special tokens of each family at the ids
the real tokenizers give them (Gemma: <pad> 0, <eos> 1, <bos> 2; Mistral: <unk> 0, <s> 1, </s> 2, [INST] 3,
[/INST] 4; Llama 3's header tokens). Nothing is downloaded."""

from __future__ import annotations

import pytest

FAMILIES = {
    # template -> (special tokens in id order, bos, the base tokenizer's own eos, the template's end of turn)
    "gemma_r1": (["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<eos>",
                 "<end_of_turn>"),
    "mistral_r1": (["<unk>", "<s>", "</s>", "[INST]", "[/INST]"], "<s>", "</s>", "</s>"),
    "llama3_r1": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                   "<|finetune_right_pad_id|>"], "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"),
    "chatml_r1": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|endoftext|>", "<|im_end|>"),
}
CORPUS = ["What is the sum of the first ten odd numbers? Please reason step by step.",
          "The answer is 100 because 1 + 3 + 5 + 7 + 9 + 11 + 13 + 15 + 17 + 19 = 100.",
          "Let x be a real number such that x^2 = 4. Then x = 2 or x = -2. \\boxed{2}"]


def base_tokenizer(family: str):
    """A base-model tokenizer of the family: its special tokens, its own EOS, and no chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials, bos, eos, _ = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)
    assert fast.chat_template is None
    return fast


def example(system: str | None = None) -> list[dict[str, str]]:
    from distill.core.protocol import R1_PROMPT_SUFFIX, user_prompt

    turns = [{"role": "user", "content": user_prompt("What is 2 + 3?", R1_PROMPT_SUFFIX)},
             {"role": "assistant", "content": "<think>\n2 plus 3 is 5.\n</think>\n\nThe answer is $\\boxed{5}$."}]
    return ([{"role": "system", "content": system}] if system else []) + turns


@pytest.mark.parametrize("family", FAMILIES)
def test_a_base_tokenizer_of_the_family_trains_on_the_assistant_turn_and_stops_at_its_end(family):
    from distill.core.chat_template import default_system, get_template
    from distill.sft.student_template import IGNORE, apply_template, tokenize_example

    tok = base_tokenizer(family)
    eos_id = apply_template(tok, get_template(family))
    assert eos_id == tok.convert_tokens_to_ids(FAMILIES[family][3]) and tok.eos_token == FAMILIES[family][3]
    assert tok.pad_token is not None
    ids, labels = tokenize_example(tok, example(), eos_id)
    trained = [t for t, label in zip(ids, labels, strict=True) if label != IGNORE]
    # what the student learns: the assistant text after the "<think>\n" the prompt already holds, then its EOS
    assert trained[-1] == eos_id and ids[-1] == eos_id
    assert tok.decode(trained[:-1]) == example()[1]["content"][len("<think>\n"):]
    prompt = tok.apply_chat_template(example()[:1], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<think>\n")  # eval sends this: no second prefill
    assert tok.decode(ids[:len(labels) - len(trained)]) == prompt
    assert default_system(tok) is None  # no system prompt of its own: the R1 protocol sends none


@pytest.mark.parametrize("family", ["gemma_r1", "mistral_r1"])
def test_families_without_a_system_role_put_it_in_the_first_user_turn(family):
    from distill.core.chat_template import get_template
    from distill.sft.student_template import apply_template

    tok = base_tokenizer(family)
    apply_template(tok, get_template(family))
    text = tok.apply_chat_template(example("Be brief.")[:2], tokenize=False)
    user_turn = "<start_of_turn>user\nBe brief.\n\n" if family == "gemma_r1" else "[INST] Be brief.\n\n"
    assert user_turn in text and "system" not in text.replace("Be brief.", "")


def test_every_packaged_template_is_tested_here_and_an_unknown_one_is_one_line():
    from distill.core.chat_template import TEMPLATES, get_template
    from distill.core.errors import DistillError

    assert set(TEMPLATES) == set(FAMILIES)
    with pytest.raises(DistillError, match="gemma_r1") as err:
        get_template("gemma3")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- eval: a base model of the family, "before"


@pytest.fixture(scope="module")
def base_gemma(tmp_path_factory):
    """A tiny random Gemma 3 text model whose tokenizer is a base Gemma's: <eos> as EOS and no chat template."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    path = tmp_path_factory.mktemp("base_gemma") / "model"
    tok = base_tokenizer("gemma_r1")
    tok.pad_token = "<pad>"
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                              sliding_window=64, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    Gemma3ForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_eval_refuses_a_base_model_without_a_template_and_names_the_family_templates(base_gemma, shared_data,
                                                                                      tmp_path):
    from conftest import run_cli

    proc = run_cli("eval", "--model", base_gemma, "--tasks", "math500", "--backend", "hf", "--data-dir", shared_data,
                   "--limit", "2", "--samples", "1", "--max-tokens", "8", "--out", tmp_path / "eval")
    assert proc.returncode == 2 and "--chat-template" in proc.stderr and "gemma_r1" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "eval" / "results.json").exists()


def test_eval_of_a_base_model_with_its_family_template_renders_it_and_stops_at_its_end_of_turn(base_gemma,
                                                                                                 shared_data,
                                                                                                 tmp_path):
    import json

    from conftest import run_cli

    out = tmp_path / "eval"
    proc = run_cli("eval", "--model", base_gemma, "--tasks", "math500", "--backend", "hf", "--data-dir", shared_data,
                   "--limit", "2", "--samples", "1", "--max-tokens", "8", "--chat-template", "gemma_r1", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    protocol = json.loads((out / "results.json").read_text())["protocol"]
    assert protocol["chat_template"] == "gemma_r1" and protocol["reasoning"] == "on"  # the template opens <think>
    assert protocol["rendered_prompt"].startswith("<bos><start_of_turn>user\n")
    assert protocol["rendered_prompt"].endswith("<start_of_turn>model\n<think>\n")
    assert "<think>\n<think>" not in protocol["rendered_prompt"]  # the template's own opening, not a second one


def test_the_family_templates_end_of_turn_stops_the_hf_backend(base_gemma):
    from distill.eval.models import LMSpec, open_model, use_template

    spec = LMSpec(model=str(base_gemma), backend="hf", max_model_len=64, max_tokens=8, dtype="float32",
                  chat_template="gemma_r1")
    lm = open_model(spec)
    use_template(lm, spec)
    end_of_turn = lm.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert lm.tokenizer.eos_token == "<end_of_turn>" and lm.eot_token_id == end_of_turn  # lm-eval's stop string
    assert lm.model.generation_config.eos_token_id[0] == end_of_turn  # generate() stops there
    assert 1 in lm.model.generation_config.eos_token_id  # and still at the base model's own <eos>


def test_the_end_of_turn_is_a_stop_token_id_for_vllm_and_a_vllm_server():
    """Stop strings do not match a special token that detokenization skips: vLLM gets the id itself, in the
    engine's sampling parameters and in a server request (vLLM's extra `stop_token_ids` field)."""
    from distill.eval.models import _openai_class, _vllm_class

    engine = object.__new__(_vllm_class())  # the sampling-parameter step alone: no engine is started
    engine.stop_token_ids = [5]
    kwargs, until, max_gen = engine.modify_gen_kwargs({"until": ["Question:"], "max_gen_toks": 7, "temperature": 0.6},
                                                      eos="<end_of_turn>")
    assert kwargs["stop_token_ids"] == [5] and kwargs["temperature"] == 0.6 and max_gen == 7 and "Question:" in until
    server = object.__new__(_openai_class())
    server.stop_token_ids, server.model, server._max_gen_toks = [5], "m", 16
    server.next_seed = lambda prompt: 1
    payload = server._create_payload("prompt", generate=True, gen_kwargs={"until": [], "max_gen_toks": 4})
    assert payload["stop_token_ids"] == [5] and payload["max_tokens"] == 4
