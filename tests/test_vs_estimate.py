"""The fused vertical-slash estimate (`vs_estimate.last_rows_mass`, Triton; the CPU runs it
under the interpreter) against the torch reference it replaces on the GPU:
`attention_mass`'s column sums and `slash_to_diagonal_scores` of its diagonal sums."""

from __future__ import annotations

import os

import pytest
import torch

from ctxagent.kernels.index import attention_mass, slash_to_diagonal_scores, vertical_slash_index, vertical_slash_mass

pytest.importorskip("triton")
from ctxagent.kernels.vs_estimate import last_rows_mass  # noqa: E402

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1", reason="needs CUDA or TRITON_INTERPRET=1"
)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# float32 in the interpreter is exact up to summation order; a GPU's tl.dot multiplies float32 in tf32
TOL = dict(rtol=2e-2, atol=1e-4) if torch.cuda.is_available() else dict(rtol=1e-4, atol=1e-6)


def qk(b, h, hkv, nq, n, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=g) * 1.5
    k = torch.randn(b, hkv, n, d, generator=g) * 1.5
    k[:, :, n // 3] += 3 * q[:, :: h // hkv, -8:].mean(2)  # a heavy column, so the sums are not all alike
    return q.to(DEVICE, dtype), k.to(DEVICE, dtype)


def reference(q, k, last_q, block):
    vertical, slash = attention_mass(q.float(), k.float(), last_q, q.shape[-1] ** -0.5)
    return vertical, slash_to_diagonal_scores(slash, block)


@pytest.mark.parametrize(
    "b,h,hkv,nq,n,d,last_q,block",
    [
        (1, 4, 2, 300, 300, 32, 64, 16),  # GQA, whole prompt, keys not a multiple of the block
        (2, 6, 2, 120, 517, 16, 20, 16),  # batch 2, a chunk after cached keys, rows not a power of two
        (1, 2, 1, 40, 40, 16, 64, 16),  # fewer queries than last_q: every row is an estimate row
        (1, 2, 2, 200, 1000, 64, 64, 64),  # the default shape of block and rows
    ],
)
def test_fused_estimate_matches_the_torch_reference(b, h, hkv, nq, n, d, last_q, block):
    q, k = qk(b, h, hkv, nq, n, d, seed=n)
    vertical, diag = vertical_slash_mass(q, k, last_q=last_q, block=block, backend="triton")
    ref_vertical, ref_diag = reference(q, k, last_q, block)
    assert vertical.shape == ref_vertical.shape and diag.shape == ref_diag.shape
    torch.testing.assert_close(vertical, ref_vertical, **TOL)
    torch.testing.assert_close(diag, ref_diag, **TOL)
    rows = min(last_q, nq)
    torch.testing.assert_close(vertical.sum(-1), torch.full((b, h), float(rows), device=DEVICE), **TOL)  # each row sums to 1


@pytest.mark.parametrize("tiles", [1, 3])
@pytest.mark.parametrize(
    "nq,n,last_q,block",
    [(300, 300, 64, 16), (120, 517, 20, 16), (200, 1000, 64, 64), (90, 1000, 128, 32), (63, 63, 64, 64)],
)
def test_diagonal_sums_match_the_reference_wherever_rows_meet_the_blocks(nq, n, last_q, block, tiles):
    """The diagonal sums come from four row sums per key tile (a row's keys in a tile lie on at
    most two block diagonals, split at a key that is the same in every tile). Rows whose positions
    do and do not line up with the block, more rows than a block, a prompt shorter than one
    block, several tiles a program: the same sums as the reference, none lost."""
    q, k = qk(1, 4, 2, nq, n, 32, seed=n + nq)
    vertical, diag = last_rows_mass(q, k, last_q, 32**-0.5, block, tiles)
    ref_vertical, ref_diag = reference(q, k, last_q, block)
    torch.testing.assert_close(vertical, ref_vertical, **TOL)
    torch.testing.assert_close(diag, ref_diag, **TOL)
    assert float(diag.sum()) == pytest.approx(float(ref_diag.sum()), rel=1e-4)


def test_tiles_per_program_give_the_same_sums_bit_for_bit():
    """The second launch may take several key tiles per program (loading the query rows
    once); the sums must not change, a last program past the keys included."""
    q, k = qk(1, 4, 2, 300, 517, 32, seed=2)
    one = last_rows_mass(q, k, 40, 32**-0.5, 16, 1)
    for tiles in (None, 3, 8):
        assert all(torch.equal(a, b) for a, b in zip(one, last_rows_mass(q, k, 40, 32**-0.5, 16, tiles)))


def test_fused_estimate_in_bf16_picks_the_reference_index():
    """bf16 as a model runs it: the logits are float32 in the kernel, bf16 in torch, so the
    scores differ by rounding; the columns and diagonals picked still agree."""
    q, k = qk(1, 4, 2, 512, 1100, 32, seed=3, dtype=torch.bfloat16)
    vertical, diag = vertical_slash_mass(q, k, last_q=64, block=16, backend="triton")
    ref_vertical, ref_diag = vertical_slash_mass(q, k, last_q=64, block=16, backend="torch")
    torch.testing.assert_close(vertical, ref_vertical, rtol=0.1, atol=2e-3)
    torch.testing.assert_close(diag, ref_diag, rtol=0.05, atol=2e-3)
    fused = vertical_slash_index(q, k, n_vertical=48, n_diag=6, last_q=64, block=16, backend="triton")
    plain = vertical_slash_index(q, k, n_vertical=48, n_diag=6, last_q=64, block=16, backend="torch")
    same_cols = (fused.cols[..., :, None] == plain.cols[..., None, :]).any(-1).float().mean()
    assert float(same_cols) >= 0.9
    assert torch.equal(fused.is_diag, plain.is_diag)


def test_spread_rows_and_per_row_take_the_torch_path():
    """The fused kernel covers the last rows only; the other estimates give what torch gives."""
    q, k = qk(1, 2, 1, 200, 200, 16, seed=5)
    for options in (dict(spread_q=16), dict(per_row=True)):
        fused = vertical_slash_mass(q, k, last_q=32, block=16, backend="triton", **options)
        plain = vertical_slash_mass(q, k, last_q=32, block=16, backend="torch", **options)
        assert all(torch.equal(a, b) for a, b in zip(fused, plain))
    with pytest.raises(ValueError, match="backend must be"):
        vertical_slash_mass(q, k, backend="cuda")
