"""Rebuild tests/assets/tiny_tokenizer/ (a ~10 KB byte-level BPE with a ChatML template and <think> tokens).

    .venv/bin/python tests/assets/make_tiny_tokenizer.py ../shared/data/math_train_sample.jsonl

Trained once on MATH problems so that math text tokenizes into a realistic number of pieces; the result is
checked in, so tests never train or download a tokenizer.
"""

import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).parent / "tiny_tokenizer"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# <think> tags are ordinary added tokens (not special): decoding with skip_special_tokens keeps them,
# as in the DeepSeek-R1-Distill tokenizers.
THINK = ["<think>", "</think>"]
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def main(corpus: str) -> None:
    texts = [json.loads(line)["problem"] for line in open(corpus)][:2000]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.add_tokens(THINK)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(HERE)


if __name__ == "__main__":
    main(sys.argv[1])
