"""A digit-friendly tokenizer and a tiny Qwen2 student built from config, for the demo (nothing downloaded).

    save_tokenizer(out / "tokenizer")                                   # ChatML template, <think> tokens
    build_student(out / "student", out / "tokenizer", hidden_size=128)  # random init, saved like a hub model

Every digit, punctuation mark and space between non-words is a token of its own; only words are merged (BPE
trained on the task's own text, so " running", " totals", " answer" and the instruction words are one token). A number
is therefore as many tokens as it has digits, and a trace line has the same token layout for every problem,
which is what lets a tiny model learn arithmetic from it (see distill/tasks/arithmetic.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from distill.core.chat_template import get_template
from distill.core.protocol import R1_PROMPT_SUFFIX, THINK_CLOSE, THINK_OPEN, THINK_PREFILL
from distill.tasks.arithmetic import SumTask, completion_text, parse_problem, solve

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# <think> tags are added tokens but not special ones: decoding with skip_special_tokens keeps them, as in the
# DeepSeek-R1-Distill tokenizers, so the grader still sees where the reasoning ends.
THINK_TOKENS = [THINK_OPEN, THINK_CLOSE]
VOCAB_SIZE = 384  # 256 byte symbols + 3 special + merges: room for every word of the task to be one token

# The packaged chatml_r1 template (no system prompt, a generation prompt that ends in "<think>\n" like DeepSeek's
# R1 templates, so a student always starts by reasoning), as the demo's sft recipes name it.
CHAT_TEMPLATE = get_template("chatml_r1").text

# Qwen2 shape of the demo student: ~0.85M parameters. In the runs that sized the demo, depth mattered more than
# width, and a small rope_theta (more distinct rotation frequencies over these short contexts) sharpened the
# fixed-offset lookups the traces rely on.
STUDENT_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "rope_theta": 500.0,
    "tie_word_embeddings": True,
}


def tokenizer_corpus() -> list[str]:
    """Text the BPE merges are learned from: the task's prompts and traces in the chat layout."""
    texts = []
    for digits, terms in ((1, 10), (2, 8)):
        for row in SumTask(terms, digits).prompts("train", 100, seed=12345):
            think, answer = solve(parse_problem(row["problem"]))
            texts.append(f"user\n{row['problem']}\n{R1_PROMPT_SUFFIX}\nassistant\n" + completion_text(think, answer))
    return texts


@functools.lru_cache(maxsize=1)
def build_tokenizer():
    """The `tokenizers` object (no transformers import): the teacher backend counts tokens with it."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        # a word with the space before it is one piece (merged into one token when the word is in the corpus);
        # every other character, digits and spaces included, is a piece and a token of its own
        pre_tokenizers.Split(Regex(r" ?[A-Za-z]+|[^A-Za-z]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # any byte is representable
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(tokenizer_corpus(), trainer)
    tok.add_tokens(THINK_TOKENS)
    return tok


def count_tokens(text: str) -> int:
    return len(build_tokenizer().encode(text, add_special_tokens=False).ids)


def chat_prompt(messages: list[dict[str, str]]) -> str:
    """The prompt text CHAT_TEMPLATE renders for `messages`, generation prompt included (for counting tokens
    without importing transformers)."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n" + THINK_PREFILL


def save_tokenizer(path: str | Path) -> Path:
    """Save the tokenizer as a transformers tokenizer dir (tokenizer.json, config, chat template)."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(), eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", bos_token=None, unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return Path(path)


def build_student(path: str | Path, tokenizer_dir: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """A Qwen2 model with random weights (STUDENT_CONFIG + overrides), saved with its tokenizer at `path`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=None, **{**STUDENT_CONFIG, **overrides})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)
