"""Sparse prefill for a whole attention layer: per-head patterns from a SparseConfig,
one merged index (each pattern built for its own heads only), one kernel launch; dense SDPA for short prompts, for decode, and for
the heads whose pattern is "dense" (SDPA's flash kernels beat ours on full attention).

Queries may be the last Nq of Nk keys: a chunk of a chunked prefill, or a prompt that
continues a cached prefix (a shared system prompt). Such a chunk runs sparse when the
keys reach `config.min_length` and the chunk has at least MIN_SPARSE_QUERIES rows."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from ctxagent.kernels.block_score import block_sparse_index
from ctxagent.kernels.config import HeadPattern, SparseConfig
from ctxagent.kernels.index import SparseIndex, a_shape_index, device_ints, num_blocks, vertical_slash_index, vertical_slash_mass, vertical_slash_select
from ctxagent.kernels.sparse_attn import check_inputs, sparse_attention

# Below this many new queries (decode, speculative steps) attention reads the K/V cache
# once whatever the pattern, and an index would cost more than it saves.
MIN_SPARSE_QUERIES = 128


def empty_index(B: int, H: int, n: int, q_start: int, block: int, device: torch.device) -> SparseIndex:
    """An index that computes nothing (for heads that SDPA takes instead)."""
    M = num_blocks(n, block) - q_start // block
    return SparseIndex(
        block,
        torch.zeros(B, H, M, 1, dtype=torch.int32, device=device),
        torch.zeros(B, H, M, dtype=torch.int32, device=device),
        q_start=q_start,
    )


def pattern_index(
    q: torch.Tensor,
    k: torch.Tensor,
    pattern: HeadPattern,
    block: int = 64,
    scale: float | None = None,
    backend: str = "auto",
    *,
    dense_as_empty: bool = False,
) -> SparseIndex:
    """The index of one pattern for all heads of q (the last Nq of k's Nk positions;
    `backend` as in sparse_attention, for the one estimate that has a kernel of its own).
    With `dense_as_empty`, a "dense" pattern yields an index that computes nothing (its
    heads go through SDPA) rather than one listing every block, O(M^2) in memory."""
    B, H, Nq, _ = q.shape
    N = k.shape[2]
    q_start = N - Nq
    p = pattern.kwargs
    if pattern.kind == "dense":
        if dense_as_empty:
            return empty_index(B, H, N, q_start, block, q.device)
        return a_shape_index(B, H, N, sink=0, local=N + block, block=block, device=q.device, q_start=q_start)
    if pattern.kind == "a_shape":
        return a_shape_index(B, H, N, block=block, device=q.device, q_start=q_start, **p)
    if pattern.kind == "vertical_slash":
        return vertical_slash_index(q, k, block=block, scale=scale, backend=backend, **p)
    if pattern.kind == "block_sparse":
        return block_sparse_index(q, k, block=block, scale=scale, backend=backend, **p)
    raise ValueError(f"unknown pattern kind {pattern.kind!r}")


def merge_heads(parts: list[tuple[list[int], SparseIndex | None]], heads: int, like: SparseIndex | None = None) -> SparseIndex:
    """One index over `heads` heads from per-group indexes: part (hs, index) holds one
    head of `index` per entry of hs, in that order (index head i is layer head hs[i]);
    a part whose index is None lists nothing for its heads (SDPA takes them).
    `like` gives block, q_start and shape when every part is None."""
    built = [p for _, p in parts if p is not None]
    first = built[0] if built else like
    if first is None:
        raise ValueError("merge_heads needs at least one built index or `like`")
    B, _, M = first.block_cnt.shape
    device = first.block_cnt.device
    max_blocks = max([p.block_idx.shape[-1] for p in built] or [1])
    with_cols = [p for p in built if p.cols is not None]
    block_idx = torch.zeros(B, heads, M, max_blocks, dtype=torch.int32, device=device)
    block_cnt = torch.zeros(B, heads, M, dtype=torch.int32, device=device)
    cols = col_cnt = is_diag = None
    if with_cols:
        max_cols = max(p.cols.shape[-1] for p in with_cols)
        cols = torch.zeros(B, heads, max_cols, dtype=torch.int32, device=device)
        col_cnt = torch.zeros(B, heads, M, dtype=torch.int32, device=device)
        is_diag = torch.zeros(B, heads, max(p.is_diag.shape[-1] for p in with_cols), dtype=torch.uint8, device=device)
    for head_list, part in parts:
        if part is None:
            continue
        hs = device_ints(tuple(head_list), device)
        block_idx[:, hs, :, : part.block_idx.shape[-1]] = part.block_idx
        block_cnt[:, hs] = part.block_cnt
        if part.cols is not None:
            cols[:, hs, : part.cols.shape[-1]] = part.cols
            col_cnt[:, hs] = part.col_cnt
            is_diag[:, hs, : part.is_diag.shape[-1]] = part.is_diag
    return SparseIndex(first.block, block_idx, block_cnt, cols, col_cnt, is_diag, first.q_start)


def head_groups(config: SparseConfig, layer: int, heads: int) -> dict[HeadPattern, list[int]]:
    groups: dict[HeadPattern, list[int]] = defaultdict(list)
    for h in range(heads):
        groups[config.pattern(layer, h)].append(h)
    return groups


def heads_subset(q: torch.Tensor, k: torch.Tensor, heads: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k for the query heads `heads` only. When they are whole KV groups the GQA
    layout is kept (each KV head once); otherwise each query head gets its KV head's keys
    (group size 1). A copy of 2 bytes x tokens x head_dim per head: 16 MB at 128K x 64."""
    H, Hkv = q.shape[1], k.shape[1]
    G = H // Hkv
    dev = q.device
    groups = sorted({h // G for h in heads})
    if heads == [g * G + i for g in groups for i in range(G)]:
        if len(groups) == Hkv:
            return q, k
        return q.index_select(1, device_ints(tuple(heads), dev)), k.index_select(1, device_ints(tuple(groups), dev))
    return q.index_select(1, device_ints(tuple(heads), dev)), k.index_select(1, device_ints(tuple(h // G for h in heads), dev))


# What a vertical-slash pattern's estimate depends on; its other parameters (n_vertical,
# n_diag, gamma) only pick from it, so heads that agree on these share one estimate.
ESTIMATE_PARAMS = ("last_q", "spread_q", "per_row")


def layer_index(
    q: torch.Tensor,
    k: torch.Tensor,
    config: SparseConfig,
    layer: int = 0,
    scale: float | None = None,
    backend: str = "auto",
    *,
    dense_as_empty: bool = False,
    share_estimates: bool = True,
) -> SparseIndex:
    """Each head's pattern from `config`, in one index for one kernel launch.

    Each distinct pattern is built for its own heads only (their q, their KV heads' k), so
    a layer with many distinct patterns costs what one pattern over all heads costs, not
    that times the number of patterns (at 128K on an H100, 14 patterns built over all 14
    heads each took 164 ms). Vertical-slash heads that differ only in budget share one
    estimate (`share_estimates`; off builds each budget alone, as before, for
    comparison). Patterns that do not read q/k (A-shape, dense) cost nothing per head.
    With `dense_as_empty`, dense heads list nothing (SDPA takes them)."""
    H = q.shape[1]
    groups = head_groups(config, layer, H)
    build = lambda pattern, qq, kk: pattern_index(qq, kk, pattern, config.block, scale, backend, dense_as_empty=dense_as_empty)  # noqa: E731
    alone = lambda pattern: (groups[pattern], build(pattern, *heads_subset(q, k, groups[pattern])))  # noqa: E731  # its heads' q and k only
    if len(groups) == 1:
        return build(next(iter(groups)), q, k)
    parts: list[tuple[list[int], SparseIndex | None]] = []
    by_estimate: dict[tuple, list[HeadPattern]] = defaultdict(list)
    for pattern, heads in groups.items():
        if pattern.kind == "dense" and dense_as_empty:
            parts.append((heads, None))
        elif pattern.kind in ("dense", "a_shape"):  # content-free: no q/k copies
            parts.append((heads, build(pattern, q[:, : len(heads)], k)))
        elif pattern.kind == "vertical_slash" and share_estimates:
            p = pattern.kwargs
            by_estimate[tuple(p[name] for name in ESTIMATE_PARAMS)].append(pattern)
        else:
            parts.append(alone(pattern))
    for patterns in by_estimate.values():
        if len(patterns) == 1:
            parts.append(alone(patterns[0]))
        else:
            parts.append(shared_estimate_index(q, k, {h: p for p in patterns for h in groups[p]}, config.block, scale, backend))
    like = empty_index(q.shape[0], 1, k.shape[2], k.shape[2] - q.shape[2], config.block, q.device)
    return merge_heads(parts, H, like)


def shared_estimate_index(
    q: torch.Tensor, k: torch.Tensor, patterns: dict[int, HeadPattern], block: int, scale: float | None, backend: str = "auto"
) -> tuple[list[int], SparseIndex]:
    """One index for vertical-slash heads `patterns` (head -> its pattern) whose estimate
    parameters agree: the estimate once for all of them, each head's budget picked from
    it. When they are at least half the layer, the estimate runs over every head (the
    default's cost; the few extra heads are cheaper than copying K per head for a subset)
    and the others' rows are dropped. Returns (heads, index) for `merge_heads`."""
    heads = sorted(patterns)
    H = q.shape[1]
    params = [patterns[h].kwargs for h in heads]
    estimate = {name: params[0][name] for name in ESTIMATE_PARAMS}
    qq, kk = (q, k) if 2 * len(heads) >= H else heads_subset(q, k, heads)
    vertical, diag_scores = vertical_slash_mass(qq, kk, scale=scale, block=block, backend=backend, **estimate)
    if qq.shape[1] != len(heads):
        pick = device_ints(tuple(heads), q.device)
        vertical, diag_scores = vertical.index_select(1, pick), diag_scores.index_select(1, pick)
    index = vertical_slash_select(
        vertical,
        diag_scores,
        tuple(p["n_vertical"] for p in params),
        tuple(p["n_diag"] for p in params),
        tuple(float(p["gamma"]) for p in params),
        block=block,
        q_start=k.shape[2] - q.shape[2],
    )
    return heads, index


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Causal SDPA with GQA; also handles a query block shorter than the keys (decode,
    chunked prefill, the dense tail), whose queries sit at the end of the sequence.
    K/V are never repeated per query head (`enable_gqa`), and the shorter block's mask is
    SDPA's lower-right causal bias, which its flash and memory-efficient kernels take
    without a materialised [Nq, Nk] mask."""
    nq, nk = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if nq == nk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(nq, nk), scale=scale, enable_gqa=gqa)


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
    """Causal attention q [B, H, Nq, D] over k, v [B, Hkv, Nk, D], the queries being the
    last Nq positions: sparse (per `config`) when the keys number at least
    `config.min_length` and the queries at least MIN_SPARSE_QUERIES, dense SDPA
    otherwise. Heads whose pattern is "dense" always go through SDPA, and so do the last
    `config.dense_tail` query rows of every head.

    backend: "auto" (Triton on CUDA, else the torch reference), "triton" (also on CPU
    under TRITON_INTERPRET=1) or "torch"."""
    config = config or SparseConfig()
    nq, nk = q.shape[2], k.shape[2]
    if nk < config.min_length or nq < min(MIN_SPARSE_QUERIES, nk) or nq > nk or nq <= config.dense_tail:
        return dense_attention(q, k, v, scale)
    check_inputs(q, k, v)
    groups = head_groups(config, layer, q.shape[1])
    dense_heads = sorted(groups.get(HeadPattern.make("dense"), []))
    if len(dense_heads) == q.shape[1]:
        return dense_attention(q, k, v, scale)
    index = layer_index(q, k, config, layer, scale, backend, dense_as_empty=True)
    out = sparse_attention(q, k, v, index, scale, backend=backend)
    if dense_heads:
        group = q.shape[1] // k.shape[1]
        kv_heads = device_ints(tuple(h // group for h in dense_heads), k.device)
        hs = device_ints(tuple(dense_heads), q.device)
        out[:, hs] = dense_attention(q[:, hs], k[:, kv_heads], v[:, kv_heads], scale)
    tail = min(config.dense_tail, nq)
    if tail > 0:  # the last rows (the question) over every key
        out[:, :, nq - tail :] = dense_attention(q[:, :, nq - tail :], k, v, scale)
    return out
