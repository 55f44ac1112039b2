"""What generate's teacher backends and eval's model backends both need from a model or a server: the API key
from the environment, the models a server lists, the end-of-sequence ids, a generation config cleared of
sampling defaults the R1 protocol does not have, decoding that keeps `<think>` tags, and whether vLLM can run.

    headers = api_key_header("OPENAI_API_KEY")      # {"Authorization": "Bearer ..."}; {} without a variable
    text = decode_keeping_think(tokenizer, ids)     # special tokens dropped, <think>/</think> kept
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from distill.core.errors import DistillError
from distill.core.protocol import THINK_CLOSE, THINK_OPEN

# The transformers backend is `transformers` in generate and `hf` in eval (lm-eval's name for it, and what
# results.json records); each stage takes the other name too.
TRANSFORMERS_NAMES = ("transformers", "hf")


def backend_name(requested: str, transformers_name: str) -> str:
    """`requested`, with either name of the transformers backend spelled as this stage spells it."""
    return transformers_name if requested in TRANSFORMERS_NAMES else requested


def api_key_header(env_name: str | None, hint: str = "") -> dict[str, str]:
    """The Authorization header for the key in $env_name ({} when no variable is named)."""
    if not env_name:
        return {}
    key = os.environ.get(env_name)
    if not key:
        raise DistillError(f"environment variable {env_name} is not set; export it with your API key{hint}")
    return {"Authorization": f"Bearer {key}"}


def eos_ids(generation_config: Any, tokenizer: Any) -> set[int]:
    """Every token that ends a sample: the generation config's (one id or a list) and the tokenizer's."""
    eos = generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def clear_sampling_defaults(generation_config: Any, max_new_tokens: bool = False) -> None:
    """A model's generation_config.json can carry sampling defaults (top_k=50, repetition_penalty, a max_length,
    a base model's max_new_tokens) that would quietly change the R1 protocol: temperature + top-p only."""
    gc = generation_config
    gc.top_k, gc.min_p, gc.repetition_penalty, gc.max_length = None, None, None, None
    if max_new_tokens:
        gc.max_new_tokens = None


def think_ids(tokenizer: Any) -> set[int]:
    """Ids of `<think>`/`</think>` when the tokenizer marks them special (they must survive decoding)."""
    special = set(tokenizer.all_special_ids)
    ids = {tokenizer.convert_tokens_to_ids(t) for t in (THINK_OPEN, THINK_CLOSE)}
    return {i for i in ids if isinstance(i, int) and i in special}


def decode_keeping_think(tokenizer: Any, ids: list[int]) -> str:
    """`skip_special_tokens=True`, except for the think tags: a tokenizer that marks `<think>` special would
    otherwise lose the tags, and with them where the reasoning ends."""
    drop = set(tokenizer.all_special_ids) - think_ids(tokenizer)
    return tokenizer.decode([t for t in ids if t not in drop], skip_special_tokens=False)


def has_cuda() -> bool:
    try:
        import torch  # only asked when choosing a backend: torch is installed with distill
    except ImportError:
        return False
    return torch.cuda.is_available()


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None
