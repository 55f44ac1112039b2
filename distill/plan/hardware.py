"""The facts `distill plan` computes with: GPUs, student architectures and teacher serving profiles, each
with its source.

    GPUS["h100"].peak_flops       # 989e12 dense bf16
    student_shape("Qwen/Qwen2.5-Math-7B")   # (ModelShape, params, 'known architecture table ...')

Reads a local model directory's config.json when there is one (it wins over the table); writes nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.gpus import GPU
from distill.core.teachers import TEACHER_PROFILES
from distill.sft.memory import ModelShape

# ---------------------------------------------------------------- students

# Architectures of the recipes' students and the back-tests' bases, from each model's config.json on the hub
# (huggingface.co/<id>/blob/main/config.json); the Instruct models share their base's shape.
# (hidden, intermediate, layers, heads, kv_heads, vocab, tied embeddings, qkv bias)
_QWEN_1_5B = (1536, 8960, 28, 12, 2, 151936, True, True)
_QWEN_7B = (3584, 18944, 28, 28, 4, 152064, False, True)
_QWEN_14B = (5120, 13824, 48, 40, 8, 152064, False, True)
_QWEN_32B = (5120, 27648, 64, 40, 8, 152064, False, True)
_LLAMA_8B = (4096, 14336, 32, 32, 8, 128256, False, False)
_LLAMA_70B = (8192, 28672, 80, 64, 8, 128256, False, False)
_SMOLLM2_135M = (576, 1536, 30, 9, 3, 49152, True, False)  # 134.5M, as the GGUF the tests convert counts
ARCHITECTURES: dict[str, tuple] = {
    "Qwen/Qwen2.5-Math-1.5B": _QWEN_1_5B, "Qwen/Qwen2.5-1.5B": _QWEN_1_5B, "Qwen/Qwen2.5-1.5B-Instruct": _QWEN_1_5B,
    "Qwen/Qwen2.5-Math-7B": _QWEN_7B, "Qwen/Qwen2.5-7B": _QWEN_7B, "Qwen/Qwen2.5-7B-Instruct": _QWEN_7B,
    "Qwen/Qwen2.5-14B": _QWEN_14B, "Qwen/Qwen2.5-14B-Instruct": _QWEN_14B,
    "Qwen/Qwen2.5-32B": _QWEN_32B, "Qwen/Qwen2.5-32B-Instruct": _QWEN_32B,
    "meta-llama/Llama-3.1-8B": _LLAMA_8B, "meta-llama/Llama-3.1-8B-Instruct": _LLAMA_8B,
    "meta-llama/Llama-3.3-70B-Instruct": _LLAMA_70B, "meta-llama/Llama-3.1-70B": _LLAMA_70B,
    "HuggingFaceTB/SmolLM2-135M-Instruct": _SMOLLM2_135M, "HuggingFaceTB/SmolLM2-135M": _SMOLLM2_135M,
}


def count_params(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int,
                 tied: bool, qkv_bias: bool, head_dim: int | None = None) -> int:
    """Parameters of a Llama/Qwen2-style decoder (Qwen2.5-7B: 7,615,616,512, as its model card's 7.61B)."""
    head_dim = head_dim or hidden // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = hidden * q + 2 * hidden * kv + q * hidden + (q + 2 * kv if qkv_bias else 0)
    per_layer = attention + 3 * hidden * intermediate + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden


def student_shape(name: str, overrides: dict[str, Any] | None = None, from_config: bool = False,
                  tokenizer: str | None = None) -> tuple[ModelShape, int, str]:
    """(shape, parameters, where the shape came from): a local dir's config.json, else the table; a student
    built from its recipe's config (init: from_config) takes that config, and its tokenizer's vocabulary."""
    config = Path(name).expanduser() / "config.json"
    overrides = overrides or {}
    if from_config and not config.is_file() and "hidden_size" in overrides:
        known = ARCHITECTURES.get(tokenizer or "")  # a hub tokenizer of a known model: its vocabulary, offline
        data = {"vocab_size": tokenizer_vocab(tokenizer) or (known[5] if known else None), **overrides}
        source = "the recipe's model.config (init: from_config)"
    elif config.is_file():
        data = json.loads(config.read_text())
        data = data.get("text_config", data) if "hidden_size" not in data else data
        source = f"{config}"
    elif name in ARCHITECTURES:
        h, i, n, heads, kv, vocab, tied, bias = ARCHITECTURES[name]
        data = dict(hidden_size=h, intermediate_size=i, num_hidden_layers=n, num_attention_heads=heads,
                    num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=tied, attention_bias=bias)
        source = f"distill.plan.hardware.ARCHITECTURES (config.json of {name} on the hub)"
    else:
        raise DistillError(f"no architecture known for '{name}' (no hub access here); known: "
                           f"{', '.join(ARCHITECTURES)}. Point model.name at a local dir with config.json")
    data = {**data, **{k: v for k, v in overrides.items() if k in _SHAPE_KEYS}}
    if not data.get("vocab_size"):
        raise DistillError(f"the student '{name}' has no vocab_size: set model.config.vocab_size or model.tokenizer")
    heads = data["num_attention_heads"]
    head_dim = data.get("head_dim") or data["hidden_size"] // heads
    kv_heads = data.get("num_key_value_heads") or heads
    bias = data.get("attention_bias", data.get("model_type") == "qwen2")
    params = count_params(data["hidden_size"], data["intermediate_size"], data["num_hidden_layers"], heads, kv_heads,
                          data["vocab_size"], bool(data.get("tie_word_embeddings", False)), bool(bias), head_dim)
    shape = ModelShape(params, data["hidden_size"], data["intermediate_size"], data["num_hidden_layers"],
                       kv_heads * head_dim, data["vocab_size"])
    return shape, params, source


def tokenizer_vocab(path: str | None) -> int | None:
    """Tokens of a local tokenizer.json (vocabulary + added tokens), without loading transformers."""
    file = Path(path).expanduser() / "tokenizer.json" if path else None
    if not file or not file.is_file():
        return None
    data = json.loads(file.read_text())
    ids = set((data.get("model") or {}).get("vocab", {}).values()) | {t["id"] for t in data.get("added_tokens", [])}
    return max(ids) + 1 if ids else None


_SHAPE_KEYS = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "vocab_size", "head_dim", "tie_word_embeddings"}


# ---------------------------------------------------------------- teachers


def serving_hint(teacher: Any, gpu_name: str, gpu: GPU, per_node: int) -> dict[str, int]:
    """The registry's hint for this GPU, else the fewest GPUs (a power of two) whose memory holds the weights
    with ~40% left for the KV cache."""
    if gpu_name in teacher.serving:
        return teacher.serving[gpu_name]
    profile = TEACHER_PROFILES.get(teacher.name)
    if profile is None:
        raise DistillError(f"teacher '{teacher.name}' has no serving hint for {gpu_name} and no known size; give "
                           "its throughput by hand: --set generate_tokens_per_s_per_node=5000")
    need = 2 ** math.ceil(math.log2(max(1.0, profile.weights_gb / (0.6 * gpu.memory_gb))))
    tp = min(need, per_node)
    return {"tensor_parallel": tp, "pipeline_parallel": need // tp, "nodes": max(1, need // per_node)}
