"""Document-masked attention for packed rows, registered in transformers' AttentionInterface.

    from distill.sft.attention import ATTENTION, register
    register()
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=ATTENTION)
    model(input_ids=row, position_ids=positions_restarting_per_document)   # no token attends across documents

A packed row holds several documents back to back; position ids restart at 0 at each document (TRL's
padding-free collator also passes `cu_seq_lens_q`, the document boundaries, which we use when present). Each
token must attend only to earlier tokens of its own document. transformers' SDPA path gets this right only when
no attention mask and no cache are passed, and then by building a dense L x L mask; with an all-ones mask (what a
padded collator sends) every document attends to the ones before it. Here:

- on CUDA with bf16/fp16: torch's variable-length flash attention (`torch.nn.attention.varlen.varlen_attn`),
  O(sum of len^2) work and no mask at all;
- elsewhere (CPU, fp32): SDPA run document by document with `is_causal`, which is exact, so the packed-vs-
  per-document equivalence is tested in CI;
- a padded batch (a real 2-D attention mask) or decoding with a cache goes to transformers' own SDPA path.
"""

from __future__ import annotations

import functools
from typing import Any

ATTENTION = "distill_varlen"


def register() -> str:
    """Register the attention function and its mask builder under ATTENTION (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION, document_attention)
    AttentionMaskInterface.register(ATTENTION, document_mask)
    return ATTENTION


def document_mask(*args: Any, attention_mask: Any = None, **kwargs: Any) -> Any:
    """No mask at all for a training forward without padding (documents come from the position ids); a padded
    batch or a decoding step with a cache gets transformers' SDPA mask."""
    from transformers.masking_utils import sdpa_mask

    q_length = kwargs.get("q_length", args[1] if len(args) > 1 else None)
    kv_length = kwargs.get("kv_length", args[2] if len(args) > 2 else None)
    if attention_mask is None and q_length == kv_length:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def document_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention over [batch, heads, len, dim] tensors; returns ([batch, len, heads, dim], None) like
    transformers' own attention functions."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    cu_seqlens, max_len = document_boundaries(query, kwargs)
    if use_varlen(query):
        out = varlen_attention(query, key, value, cu_seqlens, max_len, scale, sliding_window)
    else:
        out = per_document_attention(query, key, value, cu_seqlens, scale, sliding_window,
                                     dropout if module.training else 0.0)
    return out.reshape(query.shape[0], query.shape[2], query.shape[1], value.shape[-1]), None


def document_boundaries(query: Any, kwargs: dict[str, Any]) -> tuple[Any, int]:
    """(cu_seqlens over the flattened batch, longest document). TRL's collator hands them over precomputed
    (`cu_seq_lens_q`, `max_length_q`), which saves a device-to-host sync per layer; otherwise they come from the
    position ids (a document starts wherever the position does not continue the previous one) or, with neither,
    every row is one document."""
    import torch

    batch, length = query.shape[0], query.shape[2]
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None and batch == 1:  # no host sync here: torch.compile and CUDA streams stay happy
        max_len = kwargs.get("max_length_q")
        return cu.to(device=query.device, dtype=torch.int32), int(max_len if max_len is not None else cu.diff().max())
    positions = kwargs.get("position_ids")
    if positions is None:
        positions = torch.arange(length, device=query.device).expand(batch, length)
    return boundaries_from_positions(positions.expand(batch, length))


def boundaries_from_positions(positions: Any) -> tuple[Any, int]:
    """cu_seqlens (int32, on the positions' device) of the documents in a [batch, len] position-id tensor."""
    import torch

    batch, length = positions.shape
    starts = torch.ones_like(positions, dtype=torch.bool)
    starts[:, 1:] = positions[:, 1:] != positions[:, :-1] + 1
    flat_starts = starts.flatten().nonzero().flatten()
    end = torch.tensor([batch * length], device=positions.device)
    cu = torch.cat([flat_starts, end]).to(torch.int32)
    return cu, int(cu.diff().max())


@functools.lru_cache(maxsize=1)
def _varlen_api() -> tuple[Any, set[str]] | None:
    """(varlen_attn, the names of its parameters) or None on a torch without it (before 2.10). The keywords
    moved between releases: 2.11 has window_size but no enable_gqa, later releases have both."""
    import inspect

    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn, set(inspect.signature(varlen_attn).parameters)


def use_varlen(query: Any) -> bool:
    import torch

    return query.is_cuda and query.dtype in (torch.bfloat16, torch.float16) and _varlen_api() is not None


def varlen_attention(query, key, value, cu_seqlens, max_len: int, scale: float, sliding_window: int | None):
    """Flash attention over the concatenated documents: [batch*len, heads, dim] in and out."""
    varlen_attn, params = _varlen_api()
    q, k, v = (t.transpose(1, 2).reshape(-1, t.shape[1], t.shape[3]) for t in (query, key, value))
    extra: dict[str, Any] = {}
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            extra["enable_gqa"] = True
        else:  # no enable_gqa (torch 2.11): repeat the key/value heads
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if "window_size" in params:  # (-1, 0) is causal attention; (W-1, 0) a causal window of W tokens
        extra["window_size"] = (sliding_window - 1, 0) if sliding_window else (-1, 0)
    else:
        assert not sliding_window, "this torch's varlen_attn has no window_size: sliding windows need torch >= 2.11"
        extra["is_causal"] = True
    return varlen_attn(q, k, v, cu_seqlens, cu_seqlens, max_len, max_len, scale=scale, **extra)


def per_document_attention(query, key, value, cu_seqlens, scale: float, sliding_window: int | None,
                           dropout: float):
    """Exact reference path: causal attention within each document, never across; [batch*len, heads, dim] out.
    Documents are stacked into one padded batch (one SDPA call instead of one per document: on CPU the calls,
    not the arithmetic, cost the time); when their lengths differ so much that padding would dominate, they go
    one by one."""
    heads = query.shape[1]
    q, k, v = (t.transpose(0, 1).reshape(t.shape[1], -1, t.shape[3]) for t in (query, key, value))
    lengths = cu_seqlens.diff().tolist()
    if len(lengths) > 1 and len(lengths) * max(lengths) ** 2 <= 4 * sum(n * n for n in lengths):
        out = _stacked_documents(q, k, v, cu_seqlens, max(lengths), scale, sliding_window, dropout, heads)
    else:
        out = _document_by_document(q, k, v, cu_seqlens.tolist(), scale, sliding_window, dropout, heads)
    return out.transpose(0, 1)


def _causal_mask(length: int, sliding_window: int | None, device: Any) -> Any:
    import torch

    i = torch.arange(length, device=device)
    mask = i[None, :] <= i[:, None]
    if sliding_window:
        mask &= i[:, None] - i[None, :] < sliding_window
    return mask


def _document_by_document(q, k, v, bounds: list[int], scale, sliding_window, dropout, heads):
    import torch
    import torch.nn.functional as F

    outs = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=False):
        windowed = sliding_window and end - start > sliding_window
        mask = _causal_mask(end - start, sliding_window, q.device) if windowed else None
        outs.append(F.scaled_dot_product_attention(
            q[None, :, start:end], k[None, :, start:end], v[None, :, start:end], attn_mask=mask,
            dropout_p=dropout, is_causal=mask is None, scale=scale, enable_gqa=k.shape[0] != heads,
        )[0])
    return torch.cat(outs, dim=1)


def _stacked_documents(q, k, v, cu_seqlens, longest: int, scale, sliding_window, dropout, heads):
    """[heads, tokens, dim] -> documents as a [docs, heads, longest, dim] batch -> attention -> back."""
    import torch
    import torch.nn.functional as F

    starts, lengths = cu_seqlens[:-1].long(), cu_seqlens.diff().long()
    offsets = torch.arange(longest, device=q.device)
    valid = offsets[None, :] < lengths[:, None]  # [docs, longest]
    index = torch.where(valid, starts[:, None] + offsets[None, :], 0)
    qb, kb, vb = (t[:, index].transpose(0, 1) for t in (q, k, v))
    mask = valid[:, None, None, :] & _causal_mask(longest, sliding_window, q.device)[None, None]
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=dropout, scale=scale,
                                         enable_gqa=kb.shape[1] != heads)
    return out.transpose(0, 1)[:, valid]
