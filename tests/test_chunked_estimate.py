"""The vertical-slash estimate computed a key chunk at a time (what keeps a 1M-key chunk of
a chunked prefill from holding the last rows' probabilities over every key) against the
whole computation: the same column and diagonal sums, and the same index."""

from __future__ import annotations

import pytest
import torch

from ctxagent.kernels import index as ix
from ctxagent.kernels.index import attention_mass, vertical_slash_index


def qk(b, h, hkv, nq, n, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, hkv, n, d, generator=g)
    q = torch.randn(b, h, nq, d, generator=g)
    k[:, :, 7] += 2 * q[:, ::h // hkv].mean(2)  # a heavy column, so the sums are not all alike
    return q.to(dtype), k.to(dtype)


def assert_same_mass(whole, chunked):
    for a, b in zip(whole, chunked):
        assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("key_chunk", [5, 37, 202])  # L = 48 rows: chunks narrower than L, a last chunk of 1 key
def test_chunked_mass_equals_whole_for_the_last_rows_and_for_rows_anywhere(dtype, key_chunk):
    """GQA (6 query heads on 2 KV heads), batch 2, queries the last 120 of 203 keys (a
    chunk of a chunked prefill), chunk sizes that do not divide the keys."""
    B, H, Hkv, Nq, N, D, L = 2, 6, 2, 120, 203, 16, 48
    q, k = qk(B, H, Hkv, Nq, N, D, dtype, seed=key_chunk)
    scale = D**-0.5
    whole = attention_mass(q, k, L, scale)
    assert_same_mass(whole, attention_mass(q, k, L, scale, key_chunk))
    probs = ix.last_query_attention(q, k, L, scale)
    assert torch.equal(whole[0], probs.sum(2)) and torch.equal(whole[1], ix.slash_scores(probs))  # whole = the old code
    torch.testing.assert_close(whole[0].sum(-1), torch.full((B, H), float(L)))  # every row's probabilities sum to 1
    rows = torch.tensor([N - Nq, N - Nq + 3, 120, 151, N - L - 1])
    spread = attention_mass(q, k, rows, scale)
    assert_same_mass(spread, attention_mass(q, k, rows, scale, key_chunk))
    probs = ix.sampled_query_attention(q, k, rows, scale)
    assert torch.equal(spread[1], ix.slash_scores_at(probs, rows))
    assert float(spread[0][..., N - L :].abs().sum()) == 0.0  # no row sees a key after it


def test_chunked_slash_sums_by_hand():
    """Diagonal s of the last rows' attention, summed directly from the probabilities."""
    q, k = qk(1, 2, 1, 30, 30, 8, torch.float32, seed=1)
    L = 9
    probs = ix.last_query_attention(q, k, L, 8**-0.5)
    _, slash = attention_mass(q, k, L, 8**-0.5, key_chunk=4)
    for s in range(30):
        expected = sum(probs[0, :, r, 30 - L + r - s] for r in range(L) if 30 - L + r - s >= 0)
        torch.testing.assert_close(slash[0, :, s], expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="key_chunk must be a positive number of keys"):
        attention_mass(q, k, L, 8**-0.5, key_chunk=0)


def same_index(a, b):
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("block_idx", "block_cnt", "cols", "col_cnt", "is_diag")) and a.q_start == b.q_start


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("options", [{}, {"spread_q": 7}, {"spread_q": 7, "per_row": True, "gamma": 0.9}])
def test_index_with_the_estimate_chunked_is_the_index_without(dtype, options, monkeypatch):
    """The default path chunks only above CHUNK_KEYS_ABOVE keys; with it forced low the index
    is the same (and chunking did run)."""
    q, k = qk(1, 4, 2, 200, 330, 16, dtype, seed=5)
    build = lambda **kw: vertical_slash_index(q, k, n_vertical=20, n_diag=4, last_q=24, sink=2, block=16, **options, **kw)  # noqa: E731
    whole = build()
    calls = []
    chunked = ix.chunked_attention_mass
    monkeypatch.setattr(ix, "chunked_attention_mass", lambda *a: calls.append(a[-1]) or chunked(*a))
    assert same_index(build(key_chunk=33), whole) and calls == [33] * (1 + bool(options))
    monkeypatch.setattr(ix, "CHUNK_KEYS_ABOVE", 256)
    monkeypatch.setattr(ix, "ESTIMATE_CHUNK_BYTES", 4 * 4 * 24 * 100)  # 100 keys a chunk for the last rows
    calls.clear()
    assert same_index(build(), whole) and calls == [100]  # the 7 spread rows' budget holds 342 >= 330 keys: whole
    monkeypatch.setattr(ix, "ESTIMATE_CHUNK_BYTES", 4 * 4 * 7 * 90)  # 90 keys for the spread rows, 64 (the least) for the last
    calls.clear()
    assert same_index(build(), whole) and calls == [64] + [90] * bool(options)
    monkeypatch.setattr(ix, "CHUNK_KEYS_ABOVE", 330)  # at the threshold: whole, as today
    calls.clear()
    assert same_index(build(), whole) and calls == []
