"""Sparse prefill inside transformers, through its own extension point.

`register()` adds an attention function named "ctxagent_sparse" to transformers'
AttentionInterface (and SDPA's mask builder under the same name). A model set to that
implementation runs our sparse prefill for prompts of at least `min_length` tokens and
plain SDPA for shorter prompts and for decode steps. A left-padded batch (the hf
engine's) runs each sequence without its padding; any other mask falls back to SDPA.
Nothing in transformers is patched.

    from ctxagent.kernels.hf_integration import enable_sparse_prefill
    enable_sparse_prefill(model, "config.json")      # or True, "vertical_slash", a dict
    # or: register(); AutoModelForCausalLM.from_pretrained(..., attn_implementation="ctxagent_sparse")

The per-layer configuration rides on each attention module (attribute `ctxagent_sparse`,
a SparsePrefill); modules without one use the default config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ctxagent.kernels.attention import dense_attention, sparse_prefill_attention
from ctxagent.kernels.config import SparseConfig, default_config, resolve_config

log = logging.getLogger(__name__)

ATTN_NAME = "ctxagent_sparse"
Recorder = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class SparsePrefill:
    """What the attention function reads: the config, the kernel backend, and an optional
    recorder called with (layer, q, k) of every prefill (used by the pattern search)."""

    config: SparseConfig = field(default_factory=default_config)
    backend: str = "auto"
    recorder: Recorder | None = None
    calls: dict[str, int] = field(default_factory=lambda: {"sparse": 0, "dense": 0})


_DEFAULT = SparsePrefill()


def ctxagent_sparse_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: query [B, H, Nq, D], key/value [B, Hkv, Nk, D];
    returns ([B, Nq, H, D], None)."""
    settings: SparsePrefill = getattr(module, ATTN_NAME, None) or _DEFAULT
    layer = int(getattr(module, "layer_idx", 0) or 0)
    prefill = query.shape[2] == key.shape[2]
    if settings.recorder is not None and prefill:
        settings.recorder(layer, query, key)
    if prefill and query.shape[2] >= settings.config.min_length:
        lengths = left_padded_lengths(attention_mask, query.shape[2])
        if attention_mask is None or lengths is not None:
            settings.calls["sparse"] += 1
            out = _sparse_rows(query, key, value, lengths, settings, layer, scaling)
            return out.transpose(1, 2).contiguous(), None
    elif continues_prefix(query, key, attention_mask, settings):
        # a chunk after cached keys (a cached system prompt, chunked prefill): sparse too
        settings.calls["sparse"] += 1
        out = sparse_prefill_attention(query, key, value, settings.config, layer, scaling, backend=settings.backend)
        return out.transpose(1, 2).contiguous(), None
    elif attention_mask is None and 1 < query.shape[2] < key.shape[2]:
        # queries after cached keys with no mask (causal_or_none_mask gave none): causal
        # lower-right, which SDPA's is_causal (upper-left) would get wrong
        settings.calls["dense"] += 1
        out = dense_attention(query, key, value, scaling)
        return out.transpose(1, 2).contiguous(), None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    settings.calls["dense"] += 1
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def continues_prefix(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, settings: SparsePrefill) -> bool:
    """True for one sequence whose new queries (at least MIN_SPARSE_QUERIES) follow cached
    keys, reaching min_length in all, under a plain causal mask (or none)."""
    from ctxagent.kernels.attention import MIN_SPARSE_QUERIES

    nq, nk = query.shape[2], key.shape[2]
    if query.shape[0] != 1 or not (MIN_SPARSE_QUERIES <= nq < nk) or nk < settings.config.min_length:
        return False
    if mask is None:
        return True
    if mask.dim() != 4 or mask.shape[-2:] != (nq, nk):
        return False
    allowed = mask[0, 0] if mask.dtype == torch.bool else mask[0, 0] == 0
    rows = torch.linspace(0, nq - 1, min(nq, 64), device=mask.device).long()
    expected = torch.arange(nk, device=mask.device)[None, :] <= (rows + nk - nq)[:, None]
    return bool(torch.equal(allowed[rows], expected))


def left_padded_lengths(mask: torch.Tensor | None, n: int) -> list[int] | None:
    """Real lengths of a left-padded causal batch from its 4D mask [B, 1, N, N] (bool, or
    additive float), or None if the mask is anything else (then attention stays dense)."""
    if mask is None or mask.dim() != 4 or mask.shape[-1] != n or mask.shape[-2] != n:
        return None
    allowed = mask if mask.dtype == torch.bool else mask == 0
    last = allowed[:, 0, -1, :]  # the last query sees every real key
    lengths = last.sum(-1)
    positions = torch.arange(n, device=mask.device)
    expected_last = positions[None, :] >= (n - lengths)[:, None]
    if not torch.equal(last, expected_last):
        return None
    # and inside the real part the mask is plain causal (checked on up to 256 rows)
    rows = positions if n <= 256 else torch.linspace(0, n - 1, 256, device=mask.device).long()
    causal = positions[None, :] <= rows[:, None]
    expected = causal[None] & expected_last[:, None, :]
    real_rows = expected_last[:, rows, None]
    if not torch.equal(allowed[:, 0, rows] & real_rows, expected & real_rows):
        return None
    return lengths.tolist()


def _sparse_rows(query, key, value, lengths, settings, layer, scaling) -> torch.Tensor:
    if lengths is None or all(n == query.shape[2] for n in lengths):
        return sparse_prefill_attention(query, key, value, settings.config, layer, scaling, backend=settings.backend)
    # Variable lengths: each sequence on its own, without its left padding.
    out = torch.zeros_like(query)
    n = query.shape[2]
    for b, length in enumerate(lengths):
        if length == 0:
            continue
        sl = slice(n - length, n)
        out[b : b + 1, :, sl] = sparse_prefill_attention(
            query[b : b + 1, :, sl], key[b : b + 1, :, sl], value[b : b + 1, :, sl], settings.config, layer, scaling, backend=settings.backend
        )
    return out


def causal_or_none_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """transformers' SDPA mask builder, except that a plainly causal mask (no padding, no
    window) is never materialised: None, and the attention function applies causality
    itself (lower-right for queries after cached keys). transformers' own builder skips
    only when queries and keys are equally many; for a chunk of a chunked prefill it would
    build a [chunk, keys] mask: 32 GB for 32K queries over 1M keys."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    padding = kwargs.get("attention_mask")
    plain = kwargs.get("mask_function", causal_mask_function) is causal_mask_function and kwargs.get("local_size") is None
    if plain and kwargs.get("allow_is_causal_skip", True) and not args and (padding is None or bool(padding.all())):
        return None
    return sdpa_mask(*args, **kwargs)


def register() -> None:
    """Make attn_implementation="ctxagent_sparse" known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTN_NAME, ctxagent_sparse_attention)
    AttentionMaskInterface.register(ATTN_NAME, causal_or_none_mask)


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "num_key_value_groups")]


def enable_sparse_prefill(model: torch.nn.Module, spec: Any = True, *, backend: str = "auto", recorder: Recorder | None = None) -> SparsePrefill:
    """Switch `model` to sparse prefill with the config `spec` (see config.resolve_config).
    Returns the settings object, shared by all layers; change its fields to retune."""
    register()
    settings = spec if isinstance(spec, SparsePrefill) else SparsePrefill(resolve_config(spec), backend, recorder)
    modules = attention_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no attention modules with layer_idx; sparse prefill needs a transformers decoder")
    for m in modules:
        setattr(m, ATTN_NAME, settings)
    model.set_attn_implementation(ATTN_NAME)
    log.info("sparse prefill on for %d layers (dense below %d tokens)", len(modules), settings.config.min_length)
    device = next(model.parameters()).device
    if settings.backend == "auto" and device.type != "cuda":
        # The torch reference computes the same attention but materialises masks; on SmolLM2
        # at 8K on 2 CPU cores a needle prompt took about 4x as long as with SDPA.
        log.warning(
            "sparse prefill on %s runs the plain-torch reference: the same answers, several times slower than "
            "dense SDPA there; the Triton kernels that make it fast need a CUDA GPU", device.type
        )
    return settings


def disable_sparse_prefill(model: torch.nn.Module, attn_implementation: str = "sdpa") -> None:
    for m in attention_modules(model):
        if hasattr(m, ATTN_NAME):
            delattr(m, ATTN_NAME)
    model.set_attn_implementation(attn_implementation)
