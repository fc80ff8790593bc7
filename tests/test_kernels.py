"""Sparse-prefill kernels against their torch references (CPU: Triton's interpreter, set
up in conftest.py when there is no NVIDIA GPU), and the index builders against plain
re-computations of the selection they implement."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from ctxagent.kernels.attention import dense_attention, layer_index, pattern_index, sparse_prefill_attention
from ctxagent.kernels.block_score import lse_block_probs, lse_block_scores, pooled, pooled_block_probs, select_blocks
from ctxagent.kernels.config import HeadPattern, SparseConfig, resolve_config
from ctxagent.kernels.index import a_shape_index, last_query_attention, slash_scores, slash_to_diagonal_scores, vertical_slash_index
from ctxagent.kernels.block_score import block_sparse_index
from ctxagent.kernels.reference import attention_recall, dense_causal_reference, index_mask_rows, index_to_mask, masked_attention, sparse_attention_reference
from ctxagent.kernels.sparse_attn import sparse_attention
from ctxagent.kernels.synthetic import structured_qkv

triton = pytest.importorskip("triton")
needs_triton = pytest.mark.skipif(
    not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1", reason="needs CUDA or TRITON_INTERPRET=1"
)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# float32 through the kernel: exact in the CPU interpreter; on a GPU tl.dot multiplies in tf32
F32_TOL = 5e-3 if torch.cuda.is_available() else 1e-4


def qkv(b, h, hkv, n, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, x, n, d, generator=g).to(DEVICE, dtype) for x in (h, hkv, hkv))


def build(pattern, q, k, block):
    B, H, Nq, _ = q.shape
    N = k.shape[2]
    if pattern == "a_shape":
        return a_shape_index(B, H, N, sink=5, local=2 * block, block=block, device=q.device, q_start=N - Nq)
    if pattern == "vertical_slash":
        return vertical_slash_index(q, k, n_vertical=9, n_diag=3, last_q=8, sink=2, block=block)
    return block_sparse_index(q, k, gamma=0.6, max_blocks=3, block=block)


def rel_err(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


PATTERNS = ["a_shape", "vertical_slash", "block_sparse"]


@needs_triton
@pytest.mark.parametrize("block,q_from", [(16, 0), (16, 40), (64, 0), (64, 128)])
def test_columns_inside_listed_blocks_count_once(block, q_from):
    """Many of these columns lie in key blocks that their query blocks also compute whole; each
    must count once, as in the reference, for whole prompts and for queries after cached keys."""
    n = 300 if block == 16 else 700
    q, k, v = qkv(1, 4, 2, n, 32, torch.float32, seed=block + q_from)
    q = q[:, :, q_from:]
    index = vertical_slash_index(q, k, n_vertical=40, n_diag=4, last_q=8, sink=2, block=block)
    m = torch.arange(index.col_cnt.shape[-1]) + index.first_block
    cols = index.cols.long().cpu()[..., None, :]
    listed = torch.arange(cols.shape[-1]) < index.col_cnt.cpu()[..., None]
    covered = index.is_diag.cpu().gather(-1, (m[:, None] - cols // block).clamp_min(0).flatten(-2)).view(listed.shape) != 0
    assert int((covered & listed).sum()) > 0
    out = sparse_attention(q, k, v, index, backend="triton")
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), index)
    assert rel_err(out, ref) < F32_TOL


@needs_triton
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("dtype,tol", [(torch.float16, 3e-3), (torch.bfloat16, 2e-2)])
def test_kernel_matches_reference_gqa_odd_length(pattern, dtype, tol):
    q, k, v = qkv(2, 4, 2, 83, 64, dtype, seed=PATTERNS.index(pattern) + (10 if dtype == torch.float16 else 20))
    index = build(pattern, q, k, block=16)
    density = float(index_to_mask(index, 83).sum() / (2 * 4 * 83 * 84 / 2))
    assert 0.05 < density < 0.9  # really sparse, really computing something
    out = sparse_attention(q, k, v, index, backend="triton")
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), index)
    assert not torch.isnan(out).any()
    assert rel_err(out, ref) < tol
    # and it is not just dense attention: dropping keys changes the output
    assert rel_err(dense_causal_reference(q.double(), k.double(), v.double()), ref) > 10 * tol


@needs_triton
@pytest.mark.parametrize("pattern", PATTERNS)
def test_kernel_head_dim_128_float32_group_4(pattern):
    q, k, v = qkv(1, 4, 1, 45, 128, torch.float32, seed=7)
    index = build(pattern, q, k, block=16)
    out = sparse_attention(q, k, v, index, backend="triton")
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), index)
    assert rel_err(out, ref) < 3e-3  # interpreter: fp32; on GPU tf32


@needs_triton
@pytest.mark.parametrize("chunk", [83, 51, 50])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_block_tiles_through_tensor_descriptors_match_pointer_loads(pattern, chunk):
    """`tma=True` loads listed blocks, the queries and the output through tensor descriptors:
    on key-major strides (token major, as the engines hand them over), a length that ends
    inside a block (the descriptor's zero rows past the end), queries that start on a block
    boundary (the last 51 of 83 keys) and inside one (the last 50: the first query tile would
    start before the queries, at a negative row, which traps on an H100, so there the queries
    and output go through pointers), the output is the pointer path's and the reference's, and
    rows around the output are not written."""
    from ctxagent.kernels.triton_kernels import launch_sparse_attention

    q, k, v = qkv(1, 4, 2, 83, 32, torch.float32, seed=31)
    q = q[:, :, -chunk:].transpose(1, 2).contiguous().transpose(1, 2)
    k, v = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (k, v))
    if pattern == "block_sparse" and chunk < 83:
        pytest.skip("the block-sparse builder takes whole prompts")
    index = build(pattern, q, k, block=16)
    plain = launch_sparse_attention(q, k, v, torch.empty_like(q), index, 32**-0.5, tma=False)
    room = torch.full((1, chunk + 32, 4, 32), 7.0, device=DEVICE)  # the output: token major, rows around it
    bulk = launch_sparse_attention(q, k, v, room[:, 16 : 16 + chunk].transpose(1, 2), index, 32**-0.5, tma=True)
    assert bool((room[:, :16] == 7).all()) and bool((room[:, 16 + chunk :] == 7).all())
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), index)
    assert rel_err(bulk, plain) < F32_TOL
    assert rel_err(bulk, ref) < 3e-3
    assert rel_err(dense_causal_reference(q.double(), k.double(), v.double()), ref) > 3e-2


@needs_triton
def test_forced_descriptors_take_pointers_for_queries_a_descriptor_cannot_address():
    """Queries and output go through descriptors only where one can address them: forced
    `tma=True` with query rows 33 floats apart (not a 16-byte multiple) still loads the K/V
    blocks in bulk, and the queries through pointers, giving the pointer path's output."""
    from ctxagent.kernels.triton_kernels import descriptor_aligned, launch_sparse_attention

    q, k, v = qkv(1, 4, 2, 83, 32, torch.float32, seed=37)
    wide = torch.zeros(1, 4, 83, 33, device=DEVICE)
    wide[..., :32] = q
    q = wide[..., :32]
    assert not descriptor_aligned(q) and descriptor_aligned(k)
    index = build("vertical_slash", q, k, block=16)
    plain = launch_sparse_attention(q, k, v, torch.empty_like(q), index, 32**-0.5, tma=False)
    bulk = launch_sparse_attention(q, k, v, torch.empty_like(q), index, 32**-0.5, tma=True)
    assert rel_err(bulk, plain) < F32_TOL


def test_kernel_loads_setting_is_checked_and_auto_keeps_pointers_off_hopper(monkeypatch):
    from ctxagent.kernels.triton_kernels import bulk_loads

    k = torch.zeros(1, 2, 64, 32)
    monkeypatch.setenv("CTXAGENT_KERNEL_LOADS", "tma")
    assert bulk_loads(k, k)
    monkeypatch.setenv("CTXAGENT_KERNEL_LOADS", "pointers")
    assert not bulk_loads(k, k)
    monkeypatch.setenv("CTXAGENT_KERNEL_LOADS", "auto")
    assert not bulk_loads(k, k)  # a CPU tensor: no tensor descriptors
    monkeypatch.setenv("CTXAGENT_KERNEL_LOADS", "bulk")
    with pytest.raises(ValueError, match="CTXAGENT_KERNEL_LOADS must be one of auto, pointers, tma"):
        bulk_loads(k, k)
    # a Triton without tensor descriptors (3.2, which the [gpu] extra allows): a forced `tma` says so
    import ctxagent.kernels.triton_kernels as tk

    monkeypatch.setattr(tk, "descriptors_available", lambda: False)
    monkeypatch.setenv("CTXAGENT_KERNEL_LOADS", "tma")
    with pytest.raises(ValueError, match="needs Triton 3.3"):
        bulk_loads(k, k)


@needs_triton
@pytest.mark.parametrize("pattern", PATTERNS)
def test_kernel_matches_reference_in_blocks_of_128(pattern):
    """Blocks of 128 (8 warps, the tiles benchmarks/kernels.py --sweep times against 64) compute
    the same attention as the reference over their own index."""
    q, k, v = qkv(1, 2, 1, 300, 32, torch.float32, seed=13)
    B, H, N = 1, 2, 300
    if pattern == "a_shape":
        index = a_shape_index(B, H, N, sink=5, local=128, block=128, device=q.device)
    elif pattern == "vertical_slash":
        index = vertical_slash_index(q, k, n_vertical=9, n_diag=1, last_q=8, block=128)
    else:
        index = block_sparse_index(q, k, gamma=0.6, max_blocks=2, block=128)
    assert index.block == 128
    out = sparse_attention(q, k, v, index, backend="triton")
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), index)
    assert rel_err(out, ref) < 3e-3
    assert rel_err(dense_causal_reference(q.double(), k.double(), v.double()), ref) > 3e-2


@needs_triton
def test_mixed_per_head_patterns_in_one_launch():
    q, k, v = qkv(1, 6, 3, 70, 32, torch.float32, seed=3)
    config = SparseConfig(
        layers={
            0: [
                HeadPattern.make("a_shape", sink=4, local=16),
                HeadPattern.make("vertical_slash", n_vertical=6, n_diag=2, last_q=8),
                HeadPattern.make("block_sparse", gamma=0.5, max_blocks=2),
                HeadPattern.make("dense"),
                HeadPattern.make("a_shape", sink=4, local=16),
                HeadPattern.make("vertical_slash", n_vertical=6, n_diag=2, last_q=8),
            ]
        },
        block=16,
        min_length=16,
        dense_tail=0,
    )
    index = layer_index(q, k, config, 0)
    out = sparse_prefill_attention(q, k, v, config, 0, backend="triton")
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), index)
    assert rel_err(out, ref) < 3e-3
    # the dense head is exactly dense attention
    dense = dense_causal_reference(q.double(), k.double(), v.double())
    assert rel_err(out[:, 3], dense[:, 3]) < 3e-3
    # each head got its own pattern: the sparse heads differ from dense
    assert rel_err(out[:, 0], dense[:, 0]) > 1e-2


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("q_from", [0, 37])
def test_layer_index_builds_each_pattern_for_its_own_heads_only(backend, q_from):
    # 8 query heads over 2 KV heads (groups of 4): one pattern takes a whole KV group
    # (heads 4-7, GQA kept), the others split groups (each head gets its KV head's keys).
    q_all, k, v = qkv(1, 8, 2, 150, 32, torch.float32, seed=31)
    q = q_all[:, :, q_from:]
    vs = HeadPattern.make("vertical_slash", n_vertical=6, n_diag=2, last_q=8, spread_q=4)
    bs = HeadPattern.make("block_sparse", gamma=0.6, max_blocks=3)
    vs2 = HeadPattern.make("vertical_slash", n_vertical=10, n_diag=3, last_q=16, gamma=0.8)
    heads = [vs, bs, HeadPattern.make("a_shape", sink=4, local=16), bs, vs2, vs2, vs2, vs2]
    config = SparseConfig(layers={0: heads}, block=16, min_length=16, dense_tail=0)
    merged = layer_index(q, k, config, 0, backend=backend)
    for h, pattern in enumerate(heads):
        # the plain way: the pattern built over every head, then this head taken
        alone = pattern_index(q, k, pattern, 16, backend=backend)
        assert torch.equal(index_mask_rows(merged, torch.arange(q_from, 150), 150, head=h), index_mask_rows(alone, torch.arange(q_from, 150), 150, head=h)), (h, pattern.kind)
    out = sparse_attention(q, k, v, merged, backend=backend)
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), merged)
    assert rel_err(out, ref) < F32_TOL


@pytest.mark.parametrize("q_from", [0, 37])
@pytest.mark.parametrize("share", ["most heads", "few heads"])
def test_vertical_slash_budgets_share_one_estimate(monkeypatch, q_from, share):
    # heads that differ only in budget (n_vertical, n_diag, gamma) pick from one estimate,
    # and each head gets what its own pattern built alone gives
    import ctxagent.kernels.attention as attention

    # (budgets above the 64 sink columns every head keeps: below, which sinks stay is a tie)
    n = 300
    q_all, k, v = qkv(1, 8, 2, n, 32, torch.float32, seed=41)
    q = q_all[:, :, q_from:]
    vs = lambda nv, nd, **kw: HeadPattern.make("vertical_slash", n_vertical=nv, n_diag=nd, last_q=8, **kw)  # noqa: E731
    a = HeadPattern.make("a_shape", sink=4, local=16)
    budgets = [vs(72, 2), vs(90, 3), vs(120, 4, gamma=0.4), vs(66, 2)]
    heads = [budgets[0], a, budgets[1], budgets[2], budgets[0], budgets[3], a, budgets[1]] if share == "most heads" else [a, budgets[0], a, a, budgets[2], a, a, a]
    config = SparseConfig(layers={0: heads}, block=16, min_length=16, dense_tail=0)
    estimates = []
    real_mass = attention.vertical_slash_mass
    monkeypatch.setattr(attention, "vertical_slash_mass", lambda *a_, **kw: estimates.append(1) or real_mass(*a_, **kw))
    shared = layer_index(q, k, config, 0, backend="torch")
    assert len(estimates) == 1
    apart = layer_index(q, k, config, 0, backend="torch", share_estimates=False)
    rows = torch.arange(q_from, n)
    mask = lambda index, h: index_mask_rows(index, rows, n, head=h)  # noqa: E731
    for h, pattern in enumerate(heads):
        alone = mask(pattern_index(q, k, pattern, 16), h)
        assert torch.equal(mask(shared, h), alone), (h, pattern.to_dict())
        assert torch.equal(mask(apart, h), alone), (h, pattern.to_dict())
    # the budgets really differ: a larger one computes more of the matrix
    if share == "most heads":
        assert mask(shared, 2).sum() > mask(shared, 0).sum() > mask(shared, 5).sum()
    out = sparse_attention(q, k, v, shared, backend="torch")
    assert rel_err(out, sparse_attention_reference(q.double(), k.double(), v.double(), shared)) < 1e-5


def test_short_prompts_and_decode_stay_dense():
    q, k, v = qkv(1, 4, 2, 40, 32, torch.float32, seed=5)
    config = SparseConfig(default=HeadPattern.make("a_shape", sink=1, local=16), block=16, min_length=64)
    out = sparse_prefill_attention(q, k, v, config, backend="torch")
    assert rel_err(out, dense_causal_reference(q, k, v)) < 1e-5
    # decode: one query at the end attends to every key
    last = sparse_prefill_attention(q[:, :, -1:], k, v, config, backend="torch")
    assert rel_err(last, dense_attention(q, k, v)[:, :, -1:]) < 1e-5


def test_a_shape_mask_is_sinks_plus_local_window():
    n, block = 50, 8
    index = a_shape_index(1, 1, n, sink=3, local=16, block=block)
    mask = index_to_mask(index, n)[0, 0]
    for i in range(n):
        for j in range(n):
            expected = j <= i and (j < 3 or i // block - j // block < 2)
            assert bool(mask[i, j]) == expected, (i, j)


def test_spread_rows_and_mass_threshold_pick_a_subset_the_kernel_runs():
    """spread_q adds rows anywhere to the estimate (slash sums checked by hand); gamma < 1
    trims each head to a prefix of the full-budget choice, and the kernel computes exactly
    the trimmed index."""
    B, H, Hkv, N, D, block = 1, 4, 2, 96, 16, 16
    q, k, v = qkv(B, H, Hkv, N, D, torch.float32, seed=12)
    rows = torch.tensor([5, 40, 70])
    from ctxagent.kernels.index import sampled_query_attention, slash_scores_at

    probs = sampled_query_attention(q, k, rows, D**-0.5)
    assert float(probs[0, :, 1, 41:].sum()) == 0.0 and torch.allclose(probs.sum(-1).cpu(), torch.ones(B, H, 3))
    slash = slash_scores_at(probs, rows)
    for s in [0, 3, 39, 66, 90]:
        expected = sum(float(probs[0, 0, r, int(p) - s]) for r, p in enumerate(rows) if int(p) - s >= 0)
        assert math.isclose(float(slash[0, 0, s]), expected, rel_tol=1e-5, abs_tol=1e-7)
    full = vertical_slash_index(q, k, n_vertical=24, n_diag=4, last_q=8, sink=2, block=block, spread_q=6)
    trimmed = vertical_slash_index(q, k, n_vertical=24, n_diag=4, last_q=8, sink=2, block=block, spread_q=6, gamma=0.5)
    full_mask, trimmed_mask = index_to_mask(full, N), index_to_mask(trimmed, N)
    assert bool((trimmed_mask <= full_mask).all()) and trimmed_mask.sum() < full_mask.sum()
    assert bool(trimmed_mask[..., :2].tril().any())  # sinks stay
    if os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available():
        out = sparse_attention(q, k, v, trimmed, backend="triton")
        ref = masked_attention(q, k, v, trimmed_mask)
        assert rel_err(out, ref) < F32_TOL


def test_dense_tail_rows_attend_to_every_key_and_the_rest_stay_sparse():
    q, k, v = qkv(1, 4, 2, 96, 16, torch.float32, seed=8)
    config = SparseConfig(default=HeadPattern.make("a_shape", sink=2, local=16), block=16, min_length=64, dense_tail=0)
    sparse = sparse_prefill_attention(q, k, v, config, backend="torch")
    config.dense_tail = 20
    tailed = sparse_prefill_attention(q, k, v, config, backend="torch")
    dense = dense_causal_reference(q, k, v)
    assert rel_err(tailed[:, :, -20:], dense[:, :, -20:]) < 1e-5
    assert rel_err(sparse[:, :, -20:], dense[:, :, -20:]) > 1e-2  # the pattern alone differs there
    assert torch.equal(tailed[:, :, :-20], sparse[:, :, :-20])
    assert SparseConfig.from_dict(config.to_dict()).dense_tail == 20
    assert SparseConfig().dense_tail == SparseConfig.from_dict({}).dense_tail == 256  # on unless turned off
    config.dense_tail = 96  # the tail covers the whole prompt: dense, and no sparse pass first
    assert rel_err(sparse_prefill_attention(q, k, v, config, backend="torch"), dense) < 1e-5


def test_per_row_ranking_prefers_the_column_heavier_per_row_that_sees_it():
    """An early key takes most of the mass of the many rows before a later, stronger key
    appears; the later key takes the rest. Summed over rows the early one wins; per row
    that sees it (recall per density spent) the later one does."""
    N, D, early, late = 96, 16, 10, 70
    u = torch.zeros(D)
    u[0] = 1.0
    q = (8 * u).expand(1, 1, N, D).clone()
    k = 0.1 * torch.randn(1, 1, N, D, generator=torch.Generator().manual_seed(3))
    k[0, 0, early], k[0, 0, late] = 3 * u, 4.5 * u
    pick = lambda **kw: vertical_slash_index(q, k, n_vertical=1, n_diag=2, last_q=8, sink=0, block=16, spread_q=40, **kw).cols[0, 0].tolist()  # noqa: E731
    assert pick() == [early]
    assert pick(per_row=True) == [late]


def test_vertical_slash_selection_matches_plain_recomputation():
    torch.manual_seed(0)
    B, H, Hkv, N, D, L, block = 1, 4, 2, 72, 16, 8, 8
    q, k, _ = qkv(B, H, Hkv, N, D, torch.float32, seed=11)
    probs = last_query_attention(q, k, L, D**-0.5)
    # plain recomputation, one head and one row at a time
    for h in range(H):
        kk = k[0, h // (H // Hkv)]
        for r in range(L):
            i = N - L + r
            p = torch.softmax((q[0, h, i] @ kk[: i + 1].T) * D**-0.5, -1)
            assert torch.allclose(probs[0, h, r, : i + 1], p, atol=1e-6)
            assert probs[0, h, r, i + 1 :].abs().max() == 0 if i + 1 < N else True
    slash = slash_scores(probs)
    for s in [0, 1, 5, 30, N - 1]:
        expected = sum(float(probs[0, :, r, N - L + r - s].sum()) if N - L + r - s >= 0 else 0.0 for r in range(L))
        assert math.isclose(float(slash[0, :, s].sum()), expected, rel_tol=1e-5, abs_tol=1e-7)
    diag = slash_to_diagonal_scores(slash, block)
    for d in range(N // block):
        expected = sum(float(slash[0, 0, s]) * max(0.0, 1 - abs(s - block * d) / block) for s in range(N))
        assert math.isclose(float(diag[0, 0, d]), expected, rel_tol=1e-5, abs_tol=1e-7)
    index = vertical_slash_index(q, k, n_vertical=10, n_diag=3, last_q=L, sink=2, local_diags=1, block=block)
    vertical = probs.sum(2)
    for h in range(H):
        cols = set(index.cols[0, h].tolist())
        assert {0, 1} <= cols and len(cols) == 10
        rest = sorted(range(2, N), key=lambda j: -float(vertical[0, h, j]))[:8]
        assert cols == {0, 1, *rest}
        diags = set(torch.nonzero(index.is_diag[0, h]).flatten().tolist())
        order = sorted(range(1, N // block), key=lambda d: -float(diag[0, h, d]))[:2]
        assert diags == {0, *order}
        # the kernel's lists say the same: key block m - d for each diagonal d <= m
        for m in range(N // block):
            listed = index.block_idx[0, h, m, : index.block_cnt[0, h, m]].tolist()
            assert sorted(listed) == sorted(m - d for d in diags if d <= m)
            assert index.col_cnt[0, h, m] == sum(1 for c in cols if c <= (m + 1) * block - 1)


@pytest.mark.parametrize("estimate", ["pooled", "lse"])
def test_block_sparse_selection_matches_plain_recomputation(estimate):
    if estimate == "lse":  # the estimate itself is checked above; here the selection on it
        q, k, _ = qkv(1, 2, 1, 40, 16, torch.float32, seed=13)
        probs = lse_block_probs(q, k, 8, backend="torch")
        index = select_blocks(probs, gamma=0.7, max_blocks=3, min_blocks=1, block=8)
        check_selection(probs, index, 0.7, 3)
        return
    B, H, Hkv, N, D, block = 1, 2, 1, 40, 16, 8
    q, k, _ = qkv(B, H, Hkv, N, D, torch.float32, seed=13)
    probs = pooled_block_probs(q, k, block)
    M = math.ceil(N / block)
    for h in range(H):
        for m in range(M):
            qm = q[0, h, m * block : (m + 1) * block].mean(0)
            scores = torch.stack([qm @ k[0, 0, j * block : (j + 1) * block].mean(0) for j in range(m + 1)]) * D**-0.5
            assert torch.allclose(probs[0, h, m, : m + 1], torch.softmax(scores, 0), atol=1e-6)
            assert probs[0, h, m, m + 1 :].abs().max() == 0 if m + 1 < M else True
    index = select_blocks(probs, gamma=0.7, max_blocks=3, min_blocks=1, block=block)
    check_selection(probs, index, 0.7, 3)


def check_selection(probs, index, gamma, max_blocks):
    H, M = probs.shape[1], probs.shape[2]
    for h in range(H):
        for m in range(M):
            p = probs[0, h, m, : m + 1].tolist()
            forced = [m] + ([0] if m > 0 else [])
            order = forced + sorted((j for j in range(m + 1) if j not in forced), key=lambda j: -p[j])
            chosen, mass = [], 0.0
            for j in order[:max_blocks]:
                if mass >= gamma and j not in forced:
                    break
                chosen.append(j)
                mass += p[j]
            got = index.block_idx[0, h, m, : index.block_cnt[0, h, m]].tolist()
            assert got == chosen, (h, m)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_block_lse_kernel_matches_reference_and_definition(dtype):
    B, H, Hkv, N, D, block = 1, 4, 2, 75, 32, 16
    q, k, _ = qkv(B, H, Hkv, N, D, dtype, seed=23)
    M = math.ceil(N / block)
    probs = lse_block_probs(q, k, block, backend="triton")
    ref = lse_block_probs(q, k, block, backend="torch")
    assert torch.allclose(probs, ref, atol=2e-2 if dtype == torch.bfloat16 else 1e-4)
    scores, row_lse = lse_block_scores(q, k, block, backend="triton", with_row_lse=True)
    assert torch.allclose(row_lse, torch.logsumexp(scores, -1), atol=1e-4)  # the kernel's own row normaliser
    upper = torch.ones(M, M, dtype=torch.bool).triu(1)
    assert torch.isinf(scores[0, 0][upper]).all() and torch.isfinite(scores[0, 0][~upper]).all()
    # the definition: attention of the block's mean query over real keys, summed per key block
    qp = pooled(q, block)
    for h in (0, 3):
        for m in (0, 2, M - 1):
            logits = (qp[0, h, m].to(dtype).float() @ k[0, h // 2].float().T) * D**-0.5
            logits[(m + 1) * block :] = float("-inf")
            p = torch.softmax(logits, 0)
            expected = torch.stack([p[j * block : (j + 1) * block].sum() for j in range(M)])
            assert torch.allclose(ref[0, h, m], expected, atol=1e-4)


def test_recall_is_one_for_dense_and_tracks_mass():
    q, k, _ = qkv(1, 2, 1, 48, 16, torch.float32, seed=17)
    rows = torch.arange(48)
    dense = a_shape_index(1, 2, 48, sink=0, local=64, block=8)
    assert torch.allclose(attention_recall(q, k, dense, rows).cpu(), torch.ones(1, 2))
    local = a_shape_index(1, 2, 48, sink=0, local=8, block=8)
    recall = attention_recall(q, k, local, rows).cpu()
    q, k = q.cpu(), k.cpu()
    # recomputed: mass on the mask, averaged over rows
    mask = index_to_mask(local, 48)[0, 0]
    logits = (q[0, 0] @ k[0, 0].T) * 16**-0.5
    p = torch.softmax(logits.masked_fill(~torch.ones(48, 48, dtype=torch.bool).tril(), float("-inf")), -1)
    assert math.isclose(float(recall[0, 0]), float((p * mask).sum(-1).mean()), rel_tol=1e-5)
    assert float(recall[0, 0]) < 0.9


def test_structured_inputs_favour_vertical_slash_over_local_window():
    q, k, _ = structured_qkv(1, 2, 2, 2048, 64, seed=2)
    rows = torch.linspace(100, 2047, 32).long()
    vs = vertical_slash_index(q, k, n_vertical=256, n_diag=4, last_q=32, block=32)
    a = a_shape_index(1, 2, 2048, sink=32, local=256, block=32)
    assert vs.density(2048) < a.density(2048)  # no more work than the local window
    r_vs, r_a = attention_recall(q, k, vs, rows), attention_recall(q, k, a, rows)
    assert r_vs.min() > 0.99 and r_a.min() < 0.9  # heavy hitters and the slash line need the estimate


def test_masked_attention_reference_agrees_with_sdpa():
    q, k, v = qkv(1, 4, 2, 33, 16, torch.float32, seed=19)
    causal = torch.ones(33, 33, dtype=torch.bool, device=q.device).tril().expand(1, 4, 33, 33)
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    expected = torch.nn.functional.scaled_dot_product_attention(q, kk, vv, is_causal=True)
    assert rel_err(masked_attention(q, k, v, causal), expected) < 1e-5


def test_config_round_trip_and_clear_errors(tmp_path):
    config = SparseConfig(layers={2: [HeadPattern.make("a_shape", local=512), HeadPattern.make("block_sparse", gamma=0.9)]}, min_length=4096)
    path = config.save(tmp_path / "c.json")
    loaded = SparseConfig.load(path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.pattern(2, 1).kwargs["gamma"] == 0.9
    assert loaded.pattern(0, 0).kind == "vertical_slash"  # default for unlisted layers
    assert json.loads(path.read_text())["min_length"] == 4096
    assert resolve_config({"kind": "a_shape", "local": 128, "min_length": 10}).min_length == 10
    assert resolve_config("block_sparse").default.kind == "block_sparse"
    with pytest.raises(ValueError, match="unknown sparse pattern 'nope'"):
        HeadPattern.make("nope")
    with pytest.raises(ValueError, match="takes .*n_diag"):
        HeadPattern.make("vertical_slash", window=3)
    with pytest.raises(FileNotFoundError, match="ctxagent.kernels.search"):
        SparseConfig.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        SparseConfig.load(tmp_path / "bad.json")


def test_bad_shapes_are_named():
    q, k, v = qkv(1, 3, 2, 16, 16, torch.float32, seed=1)
    index = a_shape_index(1, 3, 16, block=16)
    with pytest.raises(ValueError, match="multiple of key/value heads"):
        sparse_attention(q, k, v, index)
    with pytest.raises(ValueError, match="as many keys as queries"):
        sparse_attention(q[:, :2], k[:, :, :8], v[:, :, :8], index)
    with pytest.raises(ValueError, match="built for queries from position 0"):
        sparse_attention(q[:, :2, 8:], k, v, index)


def test_hf_attention_function_handles_left_padding_per_sequence():
    from types import SimpleNamespace

    from ctxagent.kernels.hf_integration import SparsePrefill, ctxagent_sparse_attention, left_padded_lengths

    n, lengths = 40, [40, 29]
    q, k, v = qkv(2, 4, 2, n, 16, torch.float32, seed=29)
    positions = torch.arange(n)
    real = positions[None, :] >= (n - torch.tensor(lengths))[:, None]
    mask = (positions[None, :] <= positions[:, None])[None] & real[:, None, :]
    mask = mask[:, None]  # [B, 1, N, N] as transformers' sdpa_mask builds it
    assert left_padded_lengths(mask, n) == lengths
    assert left_padded_lengths(torch.ones_like(mask), n) is None  # not causal: stays dense
    config = SparseConfig(default=HeadPattern.make("a_shape", sink=4, local=16), block=16, min_length=16)
    settings = SparsePrefill(config, "torch")
    module = SimpleNamespace(layer_idx=0, num_key_value_groups=2, ctxagent_sparse=settings)
    out, _ = ctxagent_sparse_attention(module, q, k, v, mask)
    assert settings.calls == {"sparse": 1, "dense": 0}
    for b, length in enumerate(lengths):
        sl = slice(n - length, n)
        expected = sparse_prefill_attention(q[b : b + 1, :, sl], k[b : b + 1, :, sl], v[b : b + 1, :, sl], config, backend="torch")
        assert rel_err(out[b : b + 1, sl].transpose(1, 2), expected) < 1e-5


def test_enabling_sparse_prefill_on_cpu_warns_that_it_is_the_slow_reference(caplog):
    from transformers import LlamaConfig, LlamaForCausalLM

    from ctxagent.kernels.hf_integration import enable_sparse_prefill

    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=1, vocab_size=64)
    model = LlamaForCausalLM(config).eval()
    with caplog.at_level("WARNING", logger="ctxagent.kernels.hf_integration"):
        enable_sparse_prefill(model, backend="torch")  # asked for by name: no warning
        assert not caplog.records
        enable_sparse_prefill(model)
    assert any("plain-torch reference" in r.getMessage() for r in caplog.records)  # the model is on the CPU


# Queries that are the last Nq of Nk keys (chunked prefill, a prompt after a cached prefix)

def chunk_config(kind: str, **params) -> SparseConfig:
    return SparseConfig(default=HeadPattern.make(kind, **params), block=16, min_length=64, dense_tail=0)


COVER_ALL = {
    "a_shape": dict(sink=4, local=4096),
    "vertical_slash": dict(n_vertical=4096, n_diag=2, last_q=16),
    "block_sparse": dict(gamma=1.0, max_blocks=4096),
}
PARTIAL = {
    "a_shape": dict(sink=4, local=32),
    "vertical_slash": dict(n_vertical=12, n_diag=2, last_q=16),
    "block_sparse": dict(gamma=0.5, max_blocks=3),
}


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_chunk_after_cached_keys_equals_dense_when_covered_and_differs_when_not(pattern, backend):
    # 150 new queries after 150 cached keys: the first query block starts mid-block (150 % 16 = 6)
    q_all, k, v = qkv(1, 4, 2, 300, 32, torch.float32, seed=11)
    q = q_all[:, :, 150:]
    dense = dense_attention(q, k, v)
    assert rel_err(dense, dense_causal_reference(q_all, k, v)[:, :, 150:]) < 1e-5  # the baseline itself
    covered = sparse_prefill_attention(q, k, v, chunk_config(pattern, **COVER_ALL[pattern]), backend=backend)
    assert rel_err(covered, dense) < F32_TOL
    partial = sparse_prefill_attention(q, k, v, chunk_config(pattern, **PARTIAL[pattern]), backend=backend)
    assert rel_err(partial, dense) > 1e-2
    # and it is the index's attention for these rows, not something else that differs
    index = layer_index(q, k, chunk_config(pattern, **PARTIAL[pattern]))
    assert index.q_start == 150 and index.block_cnt.shape[-1] == math.ceil(300 / 16) - 150 // 16
    assert rel_err(partial, sparse_attention_reference(q.double(), k.double(), v.double(), index)) < F32_TOL


@needs_triton
@pytest.mark.parametrize("pattern", PATTERNS)
def test_kernel_chunk_matches_reference_bf16_block_aligned(pattern):
    q_all, k, v = qkv(2, 4, 1, 160, 64, torch.bfloat16, seed=12)
    q = q_all[:, :, 64:]  # a chunk that starts on a block boundary
    index = build(pattern, q, k, block=32)
    out = sparse_attention(q, k, v, index, backend="triton")
    ref = sparse_attention_reference(q.double(), k.double(), v.double(), index)
    assert out.shape == q.shape and not torch.isnan(out).any()
    assert rel_err(out, ref) < 2e-2


def test_decode_and_tiny_chunks_stay_dense():
    q_all, k, v = qkv(1, 4, 2, 300, 32, torch.float32, seed=13)
    config = chunk_config("a_shape", sink=1, local=16)
    for nq in (1, 8, 100):
        q = q_all[:, :, -nq:]
        assert rel_err(sparse_prefill_attention(q, k, v, config, backend="torch"), dense_attention(q, k, v)) < 1e-5


def test_block_sparse_index_in_tiles_equals_one_pass(monkeypatch):
    from ctxagent.kernels import block_score

    q_all, k, _ = qkv(1, 2, 1, 400, 32, torch.float32, seed=14)
    for q in (q_all, q_all[:, :, 130:]):
        whole = block_sparse_index(q, k, gamma=0.8, max_blocks=5, block=16, backend="torch")
        monkeypatch.setattr(block_score, "SCORE_TILE_BYTES", 2 * 25 * 4 * 3)  # three query blocks a tile
        tiled = block_sparse_index(q, k, gamma=0.8, max_blocks=5, block=16, backend="torch")
        monkeypatch.undo()
        assert torch.equal(whole.block_cnt, tiled.block_cnt)
        assert torch.equal(index_to_mask(whole, 400), index_to_mask(tiled, 400))


@needs_triton
def test_block_lse_kernel_with_query_offset_matches_reference():
    q_all, k, _ = qkv(1, 4, 2, 200, 32, torch.float32, seed=15)
    q = q_all[:, :, 70:]
    triton_scores = lse_block_scores(q, k, 16, backend="triton", tile=(1, 6))
    torch_scores = lse_block_scores(q, k, 16, backend="torch", tile=(1, 6))
    assert triton_scores.shape == (1, 4, 5, 13)
    finite = torch.isfinite(torch_scores)
    assert torch.equal(finite, torch.isfinite(triton_scores))
    assert torch.allclose(triton_scores[finite], torch_scores[finite], atol=1e-3)


def test_dense_heads_go_through_sdpa_without_a_full_index():
    q, k, v = qkv(1, 4, 2, 200, 32, torch.float32, seed=16)
    config = SparseConfig(
        layers={0: [HeadPattern.make("dense"), HeadPattern.make("a_shape", sink=2, local=16)] * 2}, block=16, min_length=64, dense_tail=0
    )
    index = layer_index(q, k, config, 0, dense_as_empty=True)
    assert int(index.block_cnt[:, [0, 2]].sum()) == 0  # nothing listed for the dense heads
    out = sparse_prefill_attention(q, k, v, config, 0, backend="torch")
    dense = dense_attention(q, k, v)
    assert rel_err(out[:, [0, 2]], dense[:, [0, 2]]) < 1e-5
    assert rel_err(out[:, [1, 3]], dense[:, [1, 3]]) > 1e-2


def test_density_budget_allocation_spends_where_recall_grows():
    from ctxagent.kernels.search import allocate_density

    # 1 layer, 3 options (cheap, mid, dense), 2 heads: head 0 gains a lot from "mid", head 1 little
    recall = torch.tensor([[[0.5, 0.95], [0.9, 0.96], [1.0, 1.0]]])
    density = torch.tensor([[[0.1, 0.1], [0.3, 0.3], [1.0, 1.0]]])
    pick = allocate_density(recall, density, budget=0.2)  # room for one upgrade of 0.2
    assert pick.tolist() == [[1, 0]]
    assert allocate_density(recall, density, budget=0.05).tolist() == [[0, 0]]  # nothing fits: the cheapest
    assert allocate_density(recall, density, budget=1.0).tolist() == [[2, 2]]  # everything fits: dense
    mean_density = density[0, pick[0], torch.arange(2)].mean()
    assert mean_density <= 0.2 + 1e-6


def test_select_config_from_tables_and_length_candidates():
    from ctxagent.kernels.search import length_candidates, select_config

    cands = length_candidates(32768)
    assert len(set(cands)) == len(cands)
    assert any(p.kwargs.get("spread_q") for p in cands) and any(p.kwargs.get("gamma", 1) < 1 for p in cands)
    # two layers of two heads; candidate 0 cheap and weak, candidate 1 better and dearer
    recall = {0: torch.tensor([[0.90, 0.97], [0.96, 0.99]]), 1: torch.tensor([[0.50, 0.99], [0.80, 0.995]])}
    density = {0: torch.tensor([[0.05, 0.05], [0.20, 0.20]]), 1: torch.tensor([[0.05, 0.05], [0.20, 0.20]])}
    two = cands[:2]
    by_target = select_config(recall, density, two, target_recall=0.95)
    assert by_target.config.layers[0] == [two[1], two[0]]  # the cheapest reaching 0.95
    assert by_target.config.layers[1][0].kind == "dense" and by_target.config.layers[1][1] == two[0]  # none reaches it: dense
    by_budget = select_config(recall, density, two, density_budget=0.10)
    chosen = [d for heads in by_budget.choices.values() for _, _, d in heads]
    assert sum(chosen) / len(chosen) <= 0.10 + 1e-6
    assert by_budget.config.layers[1][0] == two[1]  # the head that gains most is upgraded first
