"""The facts `distill plan` computes with: GPUs, student architectures and teacher serving profiles, each
with its source.

    GPUS["h100"].peak_flops       # 989e12 dense bf16
    student_shape("Qwen/Qwen2.5-Math-7B")   # (ModelShape, params, 'known architecture table ...')

Reads a local model directory's config.json when there is one (it wins over the table); writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.sft.memory import ModelShape


@dataclass(frozen=True)
class GPU:
    peak_flops: float  # dense bf16 tensor FLOP/s (the datasheet's figure without 2:4 sparsity)
    memory_gb: float  # what `launch.gpu_memory_gb` takes (datasheet GB, treated as GiB like `distill sft`)
    hbm_tb_s: float  # memory bandwidth: what bounds decode throughput
    nvlink_gb_s: float  # one direction, per GPU, inside a node (PCIe where there is no NVLink)
    source: str


# Datasheet figures (dense bf16; NVIDIA quotes "with sparsity" numbers at twice these).
GPUS: dict[str, GPU] = {
    "h100": GPU(989e12, 80, 3.35, 450, "NVIDIA H100 SXM datasheet, https://www.nvidia.com/en-us/data-center/h100/"),
    "h200": GPU(989e12, 141, 4.8, 450, "NVIDIA H200 datasheet, https://www.nvidia.com/en-us/data-center/h200/"),
    "h800": GPU(989e12, 80, 3.35, 200, "NVIDIA H800 SXM (H100 compute, 400 GB/s NVLink), DeepSeek-V3 report §3.1"),
    "b200": GPU(2250e12, 180, 8.0, 900, "NVIDIA DGX B200 datasheet (72 PF FP8 training / 8 GPUs / 4 for "
                "dense bf16), https://www.nvidia.com/en-us/data-center/dgx-b200/"),
    "a100-80gb": GPU(312e12, 80, 2.039, 300, "NVIDIA A100 datasheet, https://www.nvidia.com/en-us/data-center/a100/"),
    "a100-40gb": GPU(312e12, 40, 1.555, 300, "NVIDIA A100 datasheet, https://www.nvidia.com/en-us/data-center/a100/"),
    "l40s": GPU(362e12, 48, 0.864, 32, "NVIDIA L40S datasheet (PCIe Gen4 x16, no NVLink), "
                "https://www.nvidia.com/en-us/data-center/l40s/"),
    "mi300x": GPU(1307e12, 192, 5.3, 448, "AMD Instinct MI300X datasheet, "
                  "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html"),
}


def get_gpu(name: str, peak_flops: float | None = None, memory_gb: float | None = None) -> tuple[GPU, str]:
    """A GPU from the table, or one given by hand (--set gpu_peak_tflops=... --set gpu_memory_gb=...)."""
    known = GPUS.get(name.lower())
    if known is None and not (peak_flops and memory_gb):
        raise DistillError(f"unknown GPU type '{name}'; known: {', '.join(GPUS)}. For another GPU give its dense "
                           "bf16 peak and memory by hand: --set gpu_peak_tflops=989 --set gpu_memory_gb=80")
    base = known or GPU(0, 0, 3.35, 450, "given by hand (--set gpu_peak_tflops, gpu_memory_gb)")
    if peak_flops or memory_gb:
        base = GPU(peak_flops or base.peak_flops, memory_gb or base.memory_gb, base.hbm_tb_s, base.nvlink_gb_s,
                   base.source + "; peak/memory set by you (--set)")
    return base, name.lower()


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
        data = {"vocab_size": tokenizer_vocab(tokenizer), **overrides}
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


@dataclass(frozen=True)
class TeacherProfile:
    weights_gb: float  # what one replica must hold
    active_params: float  # per token (MoE: the routed experts only)
    trace_tokens: float  # mean completion length on math prompts
    trace_source: str
    decode_tok_s_per_gpu: float  # output tokens/s per GPU of a busy replica on the reference GPU
    decode_gpu: str  # the reference GPU; others scale by HBM bandwidth (decode reads weights + KV per step)
    decode_source: str


# GPUStack's DeepSeek-R1 benchmark on one 8xH200 node, SGLang --tp 8 --enable-dp-attention, ShareGPT:
# 7,143 tokens/s (2025-11, https://docs.gpustack.ai/latest/performance-lab/deepseek-r1/h200). DeepSeek's own
# production figure is 2x that (14.8K output tokens/s per H800 node with cross-node expert parallelism,
# https://github.com/deepseek-ai/open-infra-index, day 6), out of reach of one self-hosted replica.
_R1_DECODE = (7143 / 8, "h200", "GPUStack DeepSeek-R1 on 8xH200, SGLang tp8 + dp-attention, ShareGPT, 7,143 tok/s per "
              "node (docs.gpustack.ai/latest/performance-lab/deepseek-r1/h200)")
_R1_TRACE = (6000, "open-r1 update #1: R1's responses in OpenThoughts average 6,000 tokens "
             "(huggingface.co/blog/open-r1/update-1)")
TEACHER_PROFILES: dict[str, TeacherProfile] = {
    "deepseek-r1": TeacherProfile(700, 37e9, *_R1_TRACE, *_R1_DECODE),
    "deepseek-r1-0528": TeacherProfile(700, 37e9, 23000, "DeepSeek: R1-0528 uses 23K tokens per AIME question "
                                       "(huggingface.co/deepseek-ai/DeepSeek-R1-0528); AIME is its longest case",
                                       *_R1_DECODE),
    "deepseek-v3": TeacherProfile(700, 37e9, 1000, "estimate: direct answers, no reasoning", *_R1_DECODE),
    # dense 32B: about the active size of R1 (37B), so its per-GPU decode rate is taken to be R1's
    "qwq-32b": TeacherProfile(66, 32.8e9, _R1_TRACE[0], _R1_TRACE[1] + " (R1's figure: none published for QwQ)",
                              _R1_DECODE[0], "h200", _R1_DECODE[2] + "; QwQ-32B (dense, 32.8B) taken as R1 (37B "
                              "active)"),
}
