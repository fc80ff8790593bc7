"""The vertical-slash estimate fused in Triton: column sums and block-diagonal scores of
the last L queries' causal attention over every key, without the probabilities ever
leaving the chip.

In torch (`index.attention_mass` then `index.slash_to_diagonal_scores`, the reference)
the estimate writes the [B, H, L, N] float32 probabilities and reads them back three
times (softmax, column sums, diagonal sums): about 0.5 GB per layer at 128K for
Qwen2.5-0.5B's 14 heads, and a third of the default pattern's time on an H100
(`benchmarks/results/mixed_patterns_fast_*.md`: 1.8 ms of index against 3.4 ms of
attention). Here two launches read K twice and write only [B, H, N] column sums and a
few scores per key tile:

1. `_last_rows_lse`: each row's partial maximum and sum over a split of the keys, the
   keys split over programs;
2. `_last_rows_mass`: each program first combines its rows' partials into their
   log-sum-exp, then per key tile of BLOCK keys holds the probabilities in registers; their
   column sums are stored as they are, and their mass per block diagonal as a few partial
   sums per tile (a slash line at distance s = d * BLOCK + c counts (BLOCK - c) / BLOCK
   towards block diagonal d and c / BLOCK towards d + 1, as in `slash_to_diagonal_scores`;
   a row's keys in one tile lie on at most two block diagonals, so four row sums per tile
   and one sum over the rows give them). Tile t's entries reach the diagonals
   D0 - t .. D0 - t + KT - 1 and are stored already shifted to them, so one sum over KT
   slices adds them up: no atomics, the same sums every run.

Logits are float32 products of the bf16 inputs (the torch path rounds them to bf16), so
scores agree with the reference to float rounding and the picked columns and diagonals
to near-ties.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ctxagent import envs
from ctxagent.kernels.triton_kernels import LOG2E

MAX_ROWS = 128  # the estimate's rows live in registers
HEAD_DIMS = (16, 32, 64, 128, 256)  # what tl.arange can tile


def fits(rows: int, head_dim: int) -> bool:
    """Whether this kernel takes an estimate of `rows` rows at `head_dim`; others take the torch path."""
    return rows <= MAX_ROWS and head_dim in HEAD_DIMS


@triton.jit
def _load_rows(Q, b, h, stride_qb, stride_qh, stride_qn, NQ, L, offs_r, offs_d, DOT_F32: tl.constexpr):
    """The last L query rows of head h (rows past L zero)."""
    rows = (NQ - L + offs_r).to(tl.int64)
    q = tl.load(Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qn + offs_d[None, :], mask=(offs_r < L)[:, None], other=0.0)
    if DOT_F32:  # Triton's CPU interpreter mis-multiplies bf16 in tl.dot; tests only
        q = q.to(tl.float32)
    return q


@triton.jit
def _tile_logits(q, k_base, stride_kn, cols, offs_r, offs_d, N, L, qk_scale, DOT_F32: tl.constexpr):
    """Logits (log2 units) of the rows over key columns `cols`, -inf where a key lies after
    its row (row r sits at key position N - L + r) or the row is padding."""
    k = tl.load(k_base + cols.to(tl.int64)[:, None] * stride_kn + offs_d[None, :], mask=(cols < N)[:, None], other=0.0)
    if DOT_F32:
        k = k.to(tl.float32)
    s = tl.dot(q, tl.trans(k)) * qk_scale
    seen = (cols[None, :] <= (N - L + offs_r)[:, None]) & (offs_r < L)[:, None]
    return tl.where(seen, s, float("-inf"))


@triton.jit
def _last_rows_lse(
    Q,
    K,
    Parts,
    qk_scale,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    N,
    NQ,
    L,
    H,
    TILES_PER_SPLIT,
    NUM_TILES,
    NUM_SPLITS,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Parts[bh, split, 0 / 1, r]: running max and sum (log2 units) of row r's logits over
    the key tiles of one split."""
    bh = tl.program_id(0)
    split = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_r = tl.arange(0, ROWS)
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, HEAD_DIM)
    q = _load_rows(Q, b, h, stride_qb, stride_qh, stride_qn, NQ, L, offs_r, offs_d, DOT_F32)
    k_base = K + b * stride_kb + (h // GROUP) * stride_kh
    m_i = tl.full([ROWS], float("-inf"), tl.float32)
    l_i = tl.zeros([ROWS], tl.float32)
    t0 = split * TILES_PER_SPLIT
    t1 = tl.minimum(t0 + TILES_PER_SPLIT, NUM_TILES)
    for t in range(t0, t1):
        s = _tile_logits(q, k_base, stride_kn, t * BLOCK + offs_n, offs_r, offs_d, N, L, qk_scale, DOT_F32)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_i = l_i * tl.math.exp2(m_i - m_safe) + tl.sum(tl.math.exp2(s - m_safe[:, None]), 1)
        m_i = m_new
    base = Parts + (bh.to(tl.int64) * NUM_SPLITS + split) * 2 * ROWS
    tl.store(base + offs_r, m_i)
    tl.store(base + ROWS + offs_r, l_i)


@triton.jit
def _row_lse(Parts, bh, offs_r, NUM_SPLITS, SPLITS: tl.constexpr, ROWS: tl.constexpr):
    """Each row's log-sum-exp (log2 units) from the first launch's partial maxima and sums over
    its NUM_SPLITS splits; a row with no key (padding) gets 0, so that its -inf logits stay -inf."""
    offs_s = tl.arange(0, SPLITS)
    ok = (offs_s < NUM_SPLITS)[:, None]
    base = Parts + (bh.to(tl.int64) * NUM_SPLITS + offs_s)[:, None] * 2 * ROWS + offs_r[None, :]
    m = tl.load(base, mask=ok, other=float("-inf"))
    s = tl.load(base + ROWS, mask=ok, other=0.0)
    top = tl.max(m, 0)
    top_safe = tl.where(top == float("-inf"), 0.0, top)
    total = tl.sum(s * tl.math.exp2(m - top_safe[None, :]), 0)
    return tl.where(total > 0, top_safe + tl.log2(tl.maximum(total, 1e-30)), 0.0)


@triton.jit
def _last_rows_mass(
    Q,
    K,
    Parts,
    Vertical,
    DiagParts,
    qk_scale,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    N,
    NQ,
    L,
    H,
    NUM_TILES,
    D0,
    BATCH_HEADS,
    TILES,
    NUM_SPLITS,
    WIDTH,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    KT: tl.constexpr,
    SLOTS: tl.constexpr,
    SPLITS: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Vertical[bh, c] = sum over rows of P[r, c] for the keys c of tile t, and
    DiagParts[bh, j, NUM_TILES - 1 - t + j] = the tile's mass on block diagonal D0 - t + j
    (so that summing DiagParts over j lines every diagonal up), for TILES tiles from the
    program's first. One grid axis, heads fastest (a second axis stops at 65,535 tiles, 4M
    keys), so the query heads of a KV group read a K tile while it sits in L2."""
    pid = tl.program_id(0)
    bh = pid % BATCH_HEADS
    first = (pid // BATCH_HEADS) * TILES
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_r = tl.arange(0, ROWS)
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_j = tl.arange(0, SLOTS)
    q = _load_rows(Q, b, h, stride_qb, stride_qh, stride_qn, NQ, L, offs_r, offs_d, DOT_F32)
    k_base = K + b * stride_kb + (h // GROUP) * stride_kh
    lse = _row_lse(Parts, bh, offs_r, NUM_SPLITS, SPLITS, ROWS)
    # Row r (key position N - L + r) meets key c' of a tile at slash distance X + r - c' - t * BLOCK,
    # X = N - L: the same split in every tile, shifted by t diagonals. Along the row the block
    # diagonal steps down once, after c' = split_r; the share `frac` going one diagonal up is the
    # same in every tile too. So the tile-invariant pieces are computed once per program.
    pos = N - L + offs_r
    split = pos % BLOCK
    upper = offs_n[None, :] <= split[:, None]  # [ROWS, BLOCK]: keys on the row's higher diagonal
    frac = tl.where(upper, split[:, None] - offs_n[None, :], split[:, None] - offs_n[None, :] + BLOCK).to(tl.float32) / BLOCK
    hi = pos // BLOCK - D0  # the higher diagonal's slot, relative to the tile's first (D0 - t)
    # where each row's three amounts go: [ROWS, SLOTS], so one sum over the rows gives every slot
    below, own, above = hi[:, None] == offs_j[None, :] + 1, hi[:, None] == offs_j[None, :], hi[:, None] == offs_j[None, :] - 1
    part_base = DiagParts + bh.to(tl.int64) * KT * WIDTH + offs_j * WIDTH + offs_j
    for t in range(first, tl.minimum(first + TILES, NUM_TILES)):  # the rows, their lse and the pieces above serve TILES tiles
        cols = t * BLOCK + offs_n
        s = _tile_logits(q, k_base, stride_kn, cols, offs_r, offs_d, N, L, qk_scale, DOT_F32)
        p = tl.math.exp2(s - lse[:, None])  # 0 where masked (-inf)
        tl.store(Vertical + bh.to(tl.int64) * N + cols, tl.sum(p, 0), mask=cols < N)
        # A key's mass goes (1 - frac) to its own diagonal and frac to the next one up, so per row:
        # the lower keys' (1 - frac) to slot hi - 1, their frac and the upper keys' (1 - frac) to hi,
        # the upper keys' frac to hi + 1. Four row sums, not a masked weight per slot and key
        # (which took 1.46x as long at 128K: benchmarks/results/vs_estimate_rows_*), and one
        # sum over the rows for all slots, not one per slot.
        a = p * frac
        p_hi = tl.sum(tl.where(upper, p, 0.0), 1)
        a_hi = tl.sum(tl.where(upper, a, 0.0), 1)
        a_lo = tl.sum(a, 1) - a_hi
        p_lo = tl.sum(p, 1) - p_hi
        to_below, to_own, to_above = p_lo - a_lo, p_hi - a_hi + a_lo, a_hi
        w = tl.where(below, to_below[:, None], 0.0) + tl.where(own, to_own[:, None], 0.0) + tl.where(above, to_above[:, None], 0.0)
        tl.store(part_base + (NUM_TILES - 1 - t), tl.sum(w, 0), mask=offs_j < KT)


def last_rows_mass(
    q: torch.Tensor,
    k: torch.Tensor,
    last_q: int,
    scale: float,
    block: int,
    tiles_per_program: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Column sums [B, H, Nk] and block-diagonal scores [B, H, M] (float32) of the causal
    attention of q's last `last_q` rows over k: `attention_mass(q, k, last_q, scale)`'s
    vertical and `slash_to_diagonal_scores` of its slash, in two launches. q holds the
    last Nq of k's Nk positions.

    `tiles_per_program`: key tiles per program of the second launch, which loads the query
    rows once for all of them and streams the tiles through one loop (pipelined, like the
    first launch's splits). Unset, each head's keys go to 64 programs (fewer below 4K keys).
    While a program's tiles were unrolled (`fa0be95`..`33637fc`) one tile a program was
    fastest; `benchmarks/vs_estimate.py --tiles` times other counts side by side.

    The first launch steps one block at a time. Wider steps (128 or 256 keys, fewer
    dependent steps per program) were timed at `c8e682e` and gained nothing
    (`benchmarks/results/vs_estimate_lse_keys_*`), so the option went."""
    B, H, Nq, D = q.shape
    Hkv, N = k.shape[1], k.shape[2]
    L = min(last_q, Nq)
    if not fits(L, D):
        raise ValueError(f"the fused estimate takes at most {MAX_ROWS} rows and a head dim in {HEAD_DIMS}; got {L} rows of {D}")
    rows = max(16, triton.next_power_of_2(L))
    interp = envs.flag("TRITON_INTERPRET")
    dot_f32 = interp and q.dtype == torch.bfloat16
    q, k = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k))
    T = triton.cdiv(N, block)
    M = T
    strides = (q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2))
    meta = dict(GROUP=H // Hkv, HEAD_DIM=D, ROWS=rows, DOT_F32=dot_f32, num_warps=4)
    qk_scale = scale * LOG2E

    splits = min(T, 64)
    per_split = triton.cdiv(T, splits)
    splits = triton.cdiv(T, per_split)
    parts = torch.empty(B * H, splits, 2, rows, dtype=torch.float32, device=q.device)
    _last_rows_lse[(B * H, splits)](q, k, parts, qk_scale, *strides, N, Nq, L, H, per_split, T, splits, BLOCK=block, **meta)

    kt = (L + block - 2) // block + 3
    d0 = (N - L - block + 1) // block  # floor: block diagonal of tile 0's shortest distance
    # tile t's part j lands on diagonal d0 - t + j, at position (T - 1 - t) + j from the lowest, d0 - (T - 1)
    low = d0 - (T - 1)
    width = max(T + kt - 1, M - low)
    vertical = torch.empty(B * H, N, dtype=torch.float32, device=q.device)
    diag_parts = torch.zeros(B * H, kt, width, dtype=torch.float32, device=q.device)
    tiles_per_program = tiles_per_program or per_split  # the same 64-way split of the keys as the first launch
    programs = B * H * triton.cdiv(T, tiles_per_program)
    _last_rows_mass[(programs,)](
        q, k, parts, vertical, diag_parts, qk_scale, *strides, N, Nq, L, H, T, d0, B * H, tiles_per_program, splits, width,
        BLOCK=block, KT=kt, SLOTS=triton.next_power_of_2(kt), SPLITS=max(2, triton.next_power_of_2(splits)), **meta
    )
    diag = diag_parts.sum(1)[:, -low : -low + M]
    return vertical.view(B, H, N), diag.reshape(B, H, M)
