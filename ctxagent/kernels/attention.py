"""Sparse prefill for a whole attention layer: per-head patterns from a SparseConfig,
one merged index, one kernel launch; dense SDPA for short prompts and for decode."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from ctxagent.kernels.block_score import block_sparse_index
from ctxagent.kernels.config import HeadPattern, SparseConfig
from ctxagent.kernels.index import SparseIndex, a_shape_index, vertical_slash_index
from ctxagent.kernels.sparse_attn import check_inputs, sparse_attention


def pattern_index(
    q: torch.Tensor, k: torch.Tensor, pattern: HeadPattern, block: int = 64, scale: float | None = None, backend: str = "auto"
) -> SparseIndex:
    """The index of one pattern for all heads of q (`backend` as in sparse_attention, for
    the one estimate that has a kernel of its own)."""
    B, H, N, _ = q.shape
    p = pattern.kwargs
    if pattern.kind == "dense":
        return a_shape_index(B, H, N, sink=0, local=N + block, block=block, device=q.device)
    if pattern.kind == "a_shape":
        return a_shape_index(B, H, N, block=block, device=q.device, **p)
    if pattern.kind == "vertical_slash":
        return vertical_slash_index(q, k, block=block, scale=scale, **p)
    if pattern.kind == "block_sparse":
        return block_sparse_index(q, k, block=block, scale=scale, backend=backend, **p)
    raise ValueError(f"unknown pattern kind {pattern.kind!r}")


def merge_heads(parts: list[tuple[list[int], SparseIndex]], heads: int) -> SparseIndex:
    """One index whose head h comes from the part that lists h."""
    first = parts[0][1]
    B, _, M = first.block_cnt.shape
    device = first.block_cnt.device
    max_blocks = max(p.block_idx.shape[-1] for _, p in parts)
    with_cols = [p for _, p in parts if p.cols is not None]
    block_idx = torch.zeros(B, heads, M, max_blocks, dtype=torch.int32, device=device)
    block_cnt = torch.zeros(B, heads, M, dtype=torch.int32, device=device)
    cols = col_cnt = is_diag = None
    if with_cols:
        max_cols = max(p.cols.shape[-1] for p in with_cols)
        cols = torch.zeros(B, heads, max_cols, dtype=torch.int32, device=device)
        col_cnt = torch.zeros(B, heads, M, dtype=torch.int32, device=device)
        is_diag = torch.zeros(B, heads, M, dtype=torch.uint8, device=device)
    for head_list, part in parts:
        hs = torch.tensor(head_list, device=device)
        block_idx[:, hs, :, : part.block_idx.shape[-1]] = part.block_idx[:, hs]
        block_cnt[:, hs] = part.block_cnt[:, hs]
        if part.cols is not None:
            cols[:, hs, : part.cols.shape[-1]] = part.cols[:, hs]
            col_cnt[:, hs] = part.col_cnt[:, hs]
            is_diag[:, hs] = part.is_diag[:, hs]
    return SparseIndex(first.block, block_idx, block_cnt, cols, col_cnt, is_diag)


def layer_index(
    q: torch.Tensor, k: torch.Tensor, config: SparseConfig, layer: int = 0, scale: float | None = None, backend: str = "auto"
) -> SparseIndex:
    """Each head's pattern from `config`, built once per distinct pattern and merged."""
    H = q.shape[1]
    groups: dict[HeadPattern, list[int]] = defaultdict(list)
    for h in range(H):
        groups[config.pattern(layer, h)].append(h)
    if len(groups) == 1:
        return pattern_index(q, k, next(iter(groups)), config.block, scale, backend)
    parts = [(heads, pattern_index(q, k, pattern, config.block, scale, backend)) for pattern, heads in groups.items()]
    return merge_heads(parts, H)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Causal SDPA with GQA; also handles a query block shorter than the keys (decode,
    chunked prefill), whose queries sit at the end of the sequence."""
    nq, nk = q.shape[2], k.shape[2]
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    if nq == nk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    mask = torch.ones(nq, nk, dtype=torch.bool, device=q.device).tril_(nk - nq)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def sparse_prefill_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    config: SparseConfig | None = None,
    layer: int = 0,
    scale: float | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal attention q [B, H, Nq, D] over k, v [B, Hkv, Nk, D]: sparse (per `config`)
    for a prefill of at least `config.min_length` tokens, dense SDPA otherwise.

    backend: "auto" (Triton on CUDA, else the torch reference), "triton" (also on CPU
    under TRITON_INTERPRET=1) or "torch"."""
    config = config or SparseConfig()
    if q.shape[2] != k.shape[2] or q.shape[2] < config.min_length:
        return dense_attention(q, k, v, scale)
    check_inputs(q, k, v)
    index = layer_index(q, k, config, layer, scale, backend)
    return sparse_attention(q, k, v, index, scale, backend=backend)
