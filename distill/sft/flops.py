"""Training FLOPs and the model shape they need, one formula for the trainer's meter (tokens/s, MFU) and for plan's
estimate: 6 x matmul parameters per token (4 when the weights are frozen: LoRA), plus the attention scores,
6 x layers x hidden per squared document length.

    flops_per_document(model_shape(model), 4096)
"""

from __future__ import annotations

from typing import Any


def model_shape(model: Any) -> dict[str, Any]:
    """What the FLOP count needs: matmul parameters (the embedding lookup is not a matmul; a tied LM head is),
    layers, hidden size, and whether the weights train."""
    config = model.config.get_text_config()
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    embed = config.vocab_size * config.hidden_size
    tied = getattr(config, "tie_word_embeddings", False)
    return {"matmul_params": total - embed + (embed if tied else 0), "layers": config.num_hidden_layers,
            "hidden": config.hidden_size, "frozen": trainable < 0.5 * total}


def linear_flops(params: float, tokens: float, frozen: bool) -> float:
    """Forward and backward through the weights: 6 per parameter and token, 4 without weight gradients (LoRA)."""
    return (4 if frozen else 6) * params * tokens


def attention_flops(layers: int, hidden: int, squared_length: float) -> float:
    """The attention scores and their use, forward and backward, for documents whose squared lengths sum to
    `squared_length` (each document attends only to itself: packing keeps them apart)."""
    return 6 * layers * hidden * squared_length


def flops_per_document(shape: dict[str, Any], length: int) -> float:
    return (linear_flops(shape["matmul_params"], length, shape["frozen"])
            + attention_flops(shape["layers"], shape["hidden"], length * length))
