"""The Triton kernels at the sizes they are for, on a CUDA GPU (marked `gpu`, skipped
elsewhere): block 64, bf16, token-major q/k/v (the [tokens, heads, dim] layout that
transformers and vLLM hand over, seen as strided [B, H, N, D]), 128K tokens and more,
and past the int32 offset limit. Each checks the kernel against the torch reference on
sampled query rows (a full reference at these lengths would take minutes)."""

from __future__ import annotations

import pytest
import torch

from ctxagent.kernels.attention import sparse_prefill_attention
from ctxagent.kernels.block_score import block_sparse_index
from ctxagent.kernels.config import HeadPattern, SparseConfig
from ctxagent.kernels.index import a_shape_index, vertical_slash_index
from ctxagent.kernels.reference import index_mask_rows, masked_attention
from ctxagent.kernels.sparse_attn import sparse_attention

pytestmark = pytest.mark.gpu


def token_major(n: int, heads: int, kv_heads: int, dim: int, seed: int, q_rows: int | None = None):
    """q [1, H, Nq, D] and k, v [1, Hkv, N, D] as strided views of [N, H, D] buffers."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    q_rows = q_rows or n

    def make(rows, h):
        return (torch.randn(rows, h, dim, device="cuda", generator=g, dtype=torch.bfloat16)).transpose(0, 1).unsqueeze(0)

    q, k, v = make(q_rows, heads), make(n, kv_heads), make(n, kv_heads)
    # a few heavy keys, so the patterns have something to find
    k[:, :, :: max(1, n // 97)] *= 3
    return q, k, v


def check_rows(q, k, v, index, out, rows: torch.Tensor, tol: float = 2e-2) -> None:
    n, nq = k.shape[2], q.shape[2]
    mask = index_mask_rows(index, rows, n)
    ref = masked_attention(q[:, :, rows - (n - nq)], k, v, mask)
    got = out[:, :, rows - (n - nq)]
    err = float((got.float() - ref.float()).norm() / ref.float().norm())
    assert not torch.isnan(got).any()
    assert err < tol, err


def sample_rows(n: int, first: int = 0, count: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    rows = torch.randint(first, n, (count,), generator=g)
    return torch.cat([rows, torch.tensor([first, n - 1])]).unique().cuda()


@pytest.mark.parametrize("pattern", ["a_shape", "vertical_slash", "block_sparse"])
def test_block_64_token_major_at_128k(pattern):
    n = 131072
    q, k, v = token_major(n, 32, 8, 128, seed=1)
    assert q.stride(2) == 32 * 128  # token-major, not contiguous per head
    if pattern == "a_shape":
        index = a_shape_index(1, 32, n, sink=64, local=2048, block=64, device="cuda")
    elif pattern == "vertical_slash":
        index = vertical_slash_index(q, k, n_vertical=1024, n_diag=32, block=64)
    else:
        index = block_sparse_index(q, k, gamma=0.95, max_blocks=64, block=64)
    out = sparse_attention(q, k, v, index, backend="triton")
    check_rows(q, k, v, index, out, sample_rows(n))


@pytest.mark.parametrize("pattern", ["a_shape", "vertical_slash"])
def test_tensor_descriptor_block_loads_token_major_at_128k(pattern):
    from ctxagent.kernels.triton_kernels import launch_sparse_attention

    n = 131072
    q, k, v = token_major(n, 32, 8, 128, seed=4)
    if pattern == "a_shape":
        index = a_shape_index(1, 32, n, sink=64, local=2048, block=64, device="cuda")
    else:
        index = vertical_slash_index(q, k, n_vertical=1024, n_diag=32, block=64)
    out = launch_sparse_attention(q, k, v, torch.empty_like(q), index, 128**-0.5, tma=True)
    check_rows(q, k, v, index, out, sample_rows(n))
    plain = launch_sparse_attention(q, k, v, torch.empty_like(q), index, 128**-0.5, tma=False)
    assert float((out.float() - plain.float()).norm() / plain.float().norm()) < 1e-2


def test_chunk_after_cached_keys_at_128k():
    n, nq = 131072, 8192 + 37
    q, k, v = token_major(n, 32, 8, 128, seed=2, q_rows=nq)
    config = SparseConfig(default=HeadPattern.make("vertical_slash", n_vertical=1024, n_diag=32), block=64, min_length=8192, dense_tail=0)
    out = sparse_prefill_attention(q, k, v, config, backend="triton")
    from ctxagent.kernels.attention import layer_index

    check_rows(q, k, v, layer_index(q, k, config), out, sample_rows(n, first=n - nq))


def test_offsets_past_int32_at_512k_token_major():
    # q holds 512K x 32 x 128 = 2^31 elements: the last rows' offsets overflow int32
    n = 524288
    q, k, v = token_major(n, 32, 8, 128, seed=3)
    index = a_shape_index(1, 32, n, sink=64, local=1024, block=64, device="cuda")
    out = sparse_attention(q, k, v, index, backend="triton")
    check_rows(q, k, v, index, out, sample_rows(n, first=n - 4096, count=16))


def test_block_sparse_index_memory_is_bounded_at_1m():
    # [B, H, M, M] float32 scores would be 34 GB here; tiles keep the peak far lower
    n = 1 << 20
    q, k, _ = token_major(n, 32, 8, 128, seed=4)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    index = block_sparse_index(q, k, gamma=0.9, max_blocks=64, block=64)
    peak = torch.cuda.max_memory_allocated() - base
    assert index.block_cnt.shape == (1, 32, n // 64)
    assert peak < 12 * (1 << 30), peak / (1 << 30)


def test_vertical_slash_estimate_memory_is_bounded_for_a_chunk_at_1m():
    # the last 32K-query chunk of a 1M prefill: the whole estimate holds [1, 32, 64, 1M] bf16
    # logits, their float32 copy and the float32 softmax (20 GiB); by key chunks, one chunk's
    n, nq = 1 << 20, 32768
    q, k, _ = token_major(n, 32, 8, 128, seed=6, q_rows=nq)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    index = vertical_slash_index(q, k, n_vertical=1024, n_diag=32, block=64)
    peak = torch.cuda.max_memory_allocated() - base
    assert peak < 2 * (1 << 30), peak / (1 << 30)
    whole = vertical_slash_index(q, k, n_vertical=1024, n_diag=32, block=64, key_chunk=n)
    same = (index.cols == whole.cols).all(-1) & (index.is_diag == whole.is_diag).all(-1)
    assert int(same.sum()) >= 30, int(same.sum())  # float rounding may swap a near tie in a head or two


def test_dense_tail_rows_are_dense_at_128k():
    # the last rows go through SDPA with GQA and a lower-right causal bias (no K/V copies)
    n, tail = 131072, 256
    q, k, v = token_major(n, 32, 8, 128, seed=5)
    config = SparseConfig(default=HeadPattern.make("vertical_slash", n_vertical=256, n_diag=8), block=64, min_length=8192, dense_tail=tail)
    out = sparse_prefill_attention(q, k, v, config, backend="triton")
    rows = sample_rows(n, first=n - tail, count=16)
    causal = (torch.arange(n, device="cuda")[None, :] <= rows[:, None]).expand(1, 32, len(rows), n)
    ref = masked_attention(q[:, :, rows], k, v, causal)
    err = float((out[:, :, rows].float() - ref.float()).norm() / ref.float().norm())
    assert err < 2e-2, err
    # and the rows before the tail stay sparse
    from ctxagent.kernels.attention import layer_index

    before = sample_rows(n, count=16)
    check_rows(q, k, v, layer_index(q, k, config), out, before[before < n - tail])


def test_mixed_per_head_layer_at_128k_qwen_shape():
    # 7 distinct searched-style patterns over 14 query / 2 KV heads of 64 (groups split),
    # one index and one launch: each head's rows equal masked attention over its own pattern
    from ctxagent.kernels.attention import layer_index, pattern_index
    from ctxagent.kernels.search import length_candidates

    n = 131072
    q, k, v = token_major(n, 14, 2, 64, seed=6)
    cands = length_candidates(n)
    picks = [cands[i] for i in (0, 4, 8, 14, 19, 26, 34)]
    config = SparseConfig(layers={0: [picks[h % 7] for h in range(14)]}, block=64, min_length=8192, dense_tail=0)
    index = layer_index(q, k, config, 0, dense_as_empty=True)
    out = sparse_prefill_attention(q, k, v, config, 0, backend="triton")
    rows = sample_rows(n, count=24)
    check_rows(q, k, v, index, out, rows)
    for h in (0, 3, 6):  # and the merged index is each pattern's own, head by head
        alone = pattern_index(q, k, picks[h % 7], 64)
        assert torch.equal(index_mask_rows(index, rows, n, head=h), index_mask_rows(alone, rows, n, head=h))


def test_fused_vertical_slash_estimate_at_128k_picks_what_torch_picks():
    """The fused estimate (`vs_estimate`) on token-major bf16 q/k at 128K against the torch
    estimate: the same column mass up to bf16 logit rounding, and nearly the same picks."""
    from ctxagent.kernels.index import vertical_slash_mass

    q, k, _ = token_major(131072, 14, 2, 64, seed=11)
    fused = vertical_slash_mass(q, k, backend="triton")
    plain = vertical_slash_mass(q, k, backend="torch")
    for a, b in zip(fused, plain):
        assert a.shape == b.shape and bool(torch.isfinite(a).all())
        torch.testing.assert_close(a.sum(-1), b.sum(-1), rtol=1e-3, atol=1e-2)
    picked = vertical_slash_index(q, k, backend="triton")
    reference = vertical_slash_index(q, k, backend="torch")
    same = (picked.cols[..., :, None] == reference.cols[..., None, :]).any(-1).float().mean()
    assert float(same) >= 0.9
    assert float((picked.is_diag == reference.is_diag).float().mean()) >= 0.99
