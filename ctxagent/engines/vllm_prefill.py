"""The torch half of sparse prefill in vLLM: which rows of a step to take, and how to attend them.

Kept apart from the vLLM backend classes so it imports only torch and is tested without vLLM.
vLLM hands an attention backend one flat batch per step: `query [tokens, heads, dim]`,
`key/value [tokens, kv_heads, dim]` for the new tokens, `query_start_loc` (cumulative
query lengths, one more entry than requests) and `seq_lens` (tokens in each request's
sequence, cached plus new). A request is a *fresh prefill* when all of its tokens are
new in this step (query length == sequence length): then its keys and values are all in
this step's `key`/`value`, and causal self-attention over them is exactly its prefill.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

_calls = {"sparse_prefills": 0, "sparse_tokens": 0}


def stats() -> dict[str, int]:
    """How many prefills (and tokens) went through the sparse path in this process."""
    return dict(_calls)


def fresh_prefill_spans(query_start_loc: torch.Tensor, seq_lens: torch.Tensor, num_reqs: int, min_length: int) -> list[tuple[int, int]]:
    """Token ranges [start, end) of requests prefilling their whole prompt of >= min_length tokens."""
    starts = query_start_loc[: num_reqs + 1].tolist()
    lens = seq_lens[:num_reqs].tolist()
    spans = []
    for r in range(num_reqs):
        start, end = int(starts[r]), int(starts[r + 1])
        if end - start >= min_length and end - start == int(lens[r]):
            spans.append((start, end))
    return spans


def reference_sparse_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, config: dict[str, Any], scale: float | None = None) -> torch.Tensor:
    """Causal attention of q [B, H, N, D] over k, v [B, Hkv, N, D] under an A-shape mask
    (the first `sink` keys plus the last `local` keys of each query); dense when the config's
    kind is "dense". Plain torch: the CPU stand-in for the Triton kernels."""
    b, h, n, d = q.shape
    groups = h // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    pattern = config.get("default", config)
    rows = torch.arange(n, device=q.device)[:, None]
    cols = torch.arange(n, device=q.device)[None, :]
    mask = cols <= rows
    if pattern.get("kind", "a_shape") != "dense":
        sink, local = int(pattern.get("sink", 64)), int(pattern.get("local", 1024))
        mask &= (cols < sink) | (rows - cols < local)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale if scale is not None else d**-0.5)


def _kernel() -> Callable[..., torch.Tensor]:
    """ctxagent.kernels' dispatch (Triton on GPU, torch references on CPU), or the local reference."""
    try:
        from ctxagent.kernels.attention import sparse_prefill_attention  # type: ignore[import-not-found]

        return sparse_prefill_attention
    except ImportError:
        return reference_sparse_prefill


def sparse_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, config: dict[str, Any], *, scale: float, layer: int | None = None) -> torch.Tensor:
    fn = _kernel()
    accepted = inspect.signature(fn).parameters
    extra: dict[str, Any] = {}
    if "scale" in accepted:
        extra["scale"] = scale
    if "layer" in accepted and layer is not None:
        extra["layer"] = layer
    return fn(q, k, v, config, **extra)


def attend_spans(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    output: torch.Tensor,
    spans: list[tuple[int, int]],
    config: dict[str, Any],
    *,
    scale: float,
    layer: int | None = None,
) -> None:
    """Write sparse-prefill attention for each span of the flat batch into `output` rows."""
    for start, end in spans:
        q = query[start:end].transpose(0, 1).unsqueeze(0)  # [1, H, n, D]
        k = key[start:end].transpose(0, 1).unsqueeze(0)
        v = value[start:end].transpose(0, 1).unsqueeze(0)
        out = sparse_prefill(q, k, v, config, scale=scale, layer=layer)  # [1, H, n, D]
        rows = output[start:end]
        rows.copy_(out[0].transpose(0, 1).reshape(rows.shape).to(rows.dtype))
        _calls["sparse_prefills"] += 1
        _calls["sparse_tokens"] += end - start


def layer_index(layer: Any) -> int | None:
    """The decoder layer number from a vLLM attention layer's name ("model.layers.3.self_attn.attn")."""
    name = getattr(layer, "layer_name", "") or ""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "layers" and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None
