"""The one Triton kernel behind every sparse pattern: causal attention over an index.

Every pattern (A-shape, vertical-slash, block-sparse) is reduced to the same index
(see `ctxagent.kernels.index.SparseIndex`):

- per query block, a list of key blocks computed whole (local window, slash lines
  rounded to block diagonals, selected blocks), and
- optionally, per head, a sorted list of single key columns (vertical lines, sinks),
  gathered BLOCK at a time; a column whose key block is already in the block list is
  skipped so nothing is counted twice.

So one kernel, in the shape of Triton's fused-attention tutorial (an online softmax over
key tiles), serves all patterns. Query block `m` and key block `kb` share one block size,
which keeps the causal test to one comparison per element. Query blocks are launched
heaviest first (the last blocks see the most columns) to balance the grid. On Hopper a
listed block's K/V tile, the query tile and the output tile each move in one bulk copy
through a tensor descriptor (`bulk_loads`); gathered columns, and every tile elsewhere,
load row by row through pointers. A gathered column whose key block is listed too is
loaded anyway and masked in the softmax only: testing it before the loads put a third
dependent memory access in front of every column tile's K/V.

Queries may be the last Nq of the N keys (Q_START = N - Nq): positions stay key
positions, query rows before Q_START in the first query block are masked off, and the
index rows start at query block Q_START // BLOCK. Offsets into q/k/v/out are computed in
int64, so token-major layouts past 2^31 elements (512K tokens x 32 heads x 128) are safe.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ctxagent import envs


@triton.jit
def _attend_keys(q, k_base, v_base, cols, load, use, offs_m, offs_d, stride_kn, stride_vn, qk_scale, m_i, l_i, acc, DOT_F32: tl.constexpr):
    """One online-softmax step over a tile of key columns `cols` (those with `use` set),
    loaded row by row through pointers (rows with `load` set): gathered columns, or listed
    blocks off Hopper."""
    rows = cols.to(tl.int64)
    k = tl.load(k_base + rows[:, None] * stride_kn + offs_d[None, :], mask=load[:, None], other=0.0)
    v = tl.load(v_base + rows[:, None] * stride_vn + offs_d[None, :], mask=load[:, None], other=0.0)
    return _attend_tile(q, k, v, cols, use, offs_m, qk_scale, m_i, l_i, acc, DOT_F32)


@triton.jit
def _attend_tile(q, k, v, cols, use, offs_m, qk_scale, m_i, l_i, acc, DOT_F32: tl.constexpr):
    """One online-softmax step over a loaded tile of keys `cols` (those with `use` set),
    causal against the query rows `offs_m`; returns the updated running max, sum and output.
    A tile loaded through a tensor descriptor has zero rows past the end; like any key after
    the query, they are masked here."""
    if DOT_F32:  # Triton's CPU interpreter mis-multiplies bf16 in tl.dot; tests only
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    qk = tl.dot(q, tl.trans(k)) * qk_scale
    qk = tl.where(use[None, :] & (cols[None, :] <= offs_m[:, None]), qk, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(qk, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.math.exp2(qk - m_safe[:, None])
    alpha = tl.math.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
    return m_new, l_i, acc


@triton.jit
def _sparse_attn_fwd(
    Q,
    K,
    V,
    QDesc,
    KDesc,
    VDesc,
    ODesc,
    Out,
    BlockIdx,
    BlockCnt,
    Cols,
    ColCnt,
    IsDiag,
    qk_scale,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_ob,
    stride_oh,
    stride_on,
    N,
    H,
    NUM_M,
    MAX_BLOCKS,
    MAX_COLS,
    Q_START,
    NUM_KB,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK: tl.constexpr,
    HAS_COLS: tl.constexpr,
    DOT_F32: tl.constexpr,
    TMA: tl.constexpr,
    QO_TMA: tl.constexpr,
):
    m_row = NUM_M - 1 - tl.program_id(0)  # heaviest query blocks first
    m = m_row + Q_START // BLOCK
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    kvh = h // GROUP

    offs_m = m * BLOCK + tl.arange(0, BLOCK)
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, HEAD_DIM)
    q_rows = (offs_m - Q_START).to(tl.int64)
    q_ok = (offs_m >= Q_START) & (offs_m < N)
    if QO_TMA:  # rows past the last query come back zero
        q = QDesc.load([b.to(tl.int32), h.to(tl.int32), (m * BLOCK - Q_START).to(tl.int32), 0]).reshape(BLOCK, HEAD_DIM)
    else:
        q = tl.load(
            Q + b * stride_qb + h * stride_qh + q_rows[:, None] * stride_qn + offs_d[None, :],
            mask=q_ok[:, None],
            other=0.0,
        )
    if DOT_F32:  # Triton's CPU interpreter mis-multiplies bf16 in tl.dot; tests only
        q = q.to(tl.float32)
    k_base = K + b * stride_kb + kvh * stride_kh
    v_base = V + b * stride_vb + kvh * stride_vh

    m_i = tl.full([BLOCK], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK], tl.float32)
    acc = tl.zeros([BLOCK, HEAD_DIM], tl.float32)

    row = bh * NUM_M + m_row
    n_blocks = tl.load(BlockCnt + row)
    for j in range(0, n_blocks):
        kb = tl.load(BlockIdx + row.to(tl.int64) * MAX_BLOCKS + j)
        cols = kb * BLOCK + offs_n
        if TMA:  # the block's keys are contiguous: one bulk copy each for K and V
            k = KDesc.load([b.to(tl.int32), kvh.to(tl.int32), kb * BLOCK, 0]).reshape(BLOCK, HEAD_DIM)
            v = VDesc.load([b.to(tl.int32), kvh.to(tl.int32), kb * BLOCK, 0]).reshape(BLOCK, HEAD_DIM)
            m_i, l_i, acc = _attend_tile(q, k, v, cols, cols < N, offs_m, qk_scale, m_i, l_i, acc, DOT_F32)
        else:
            m_i, l_i, acc = _attend_keys(q, k_base, v_base, cols, cols < N, cols < N, offs_m, offs_d, stride_kn, stride_vn, qk_scale, m_i, l_i, acc, DOT_F32)

    if HAS_COLS:
        n_cols = tl.load(ColCnt + row)
        col_base = Cols + bh.to(tl.int64) * MAX_COLS
        diag_base = IsDiag + bh.to(tl.int64) * NUM_KB
        for c0 in range(0, n_cols, BLOCK):
            ci = c0 + offs_n
            listed = ci < n_cols
            cols = tl.load(col_base + ci, mask=listed, other=0)
            # A column inside a key block of the block list was computed there already: its
            # K/V is loaded all the same (masking the loads by this test as well made them wait
            # on it: 2% of the 8B-shaped kernel at 128K; docs/kernels.md), and only the softmax
            # leaves it out.
            covered = tl.load(diag_base + (m - cols // BLOCK), mask=listed, other=1)
            use = listed & (covered == 0)
            m_i, l_i, acc = _attend_keys(q, k_base, v_base, cols, listed, use, offs_m, offs_d, stride_kn, stride_vn, qk_scale, m_i, l_i, acc, DOT_F32)

    l_i = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_i[:, None]
    if QO_TMA:  # rows past the last query are not written
        ODesc.store([b.to(tl.int32), h.to(tl.int32), (m * BLOCK - Q_START).to(tl.int32), 0], out.to(Out.dtype.element_ty).reshape(1, 1, BLOCK, HEAD_DIM))
    else:
        tl.store(
            Out + b * stride_ob + h * stride_oh + q_rows[:, None] * stride_on + offs_d[None, :],
            out.to(Out.dtype.element_ty),
            mask=q_ok[:, None],
        )


LOG2E = 1.4426950408889634


def _descriptor(x: torch.Tensor, block: int):
    """A tensor descriptor of x [B, heads, N, D] (any strides) that moves one block of rows:
    a key block of K or V, or a query tile of q or of the output."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    return TensorDescriptor(x, list(x.shape), list(x.stride()), [1, 1, block, x.shape[-1]])


KERNEL_LOADS = ("auto", "pointers", "tma")


@functools.cache
def descriptors_available() -> bool:
    """Host-side tensor descriptors came with Triton 3.3; the [gpu] extra allows 3.2."""
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: F401
    except ImportError:
        return False
    return True


def descriptor_aligned(x: torch.Tensor) -> bool:
    """Whether a tensor descriptor can address x: unit last stride, 16-byte base and strides."""
    return x.stride(-1) == 1 and x.data_ptr() % 16 == 0 and all(s * x.element_size() % 16 == 0 for s in x.stride()[:-1])


def bulk_loads(k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the kernel moves listed blocks through tensor descriptors (CTXAGENT_KERNEL_LOADS),
    and with them the queries and outputs where those allow it (`launch_sparse_attention`):
    `auto` does on Hopper and later, where the listed blocks alone measured 4% faster than
    per-row pointers over the whole default index (13% over the block lists alone;
    docs/kernels.md), when k and v are `descriptor_aligned`."""
    loads = envs.get("CTXAGENT_KERNEL_LOADS")
    if loads not in KERNEL_LOADS:
        raise ValueError(f"CTXAGENT_KERNEL_LOADS must be one of {', '.join(KERNEL_LOADS)}; got {loads!r}")
    if loads == "tma" and not descriptors_available():
        raise ValueError(f"CTXAGENT_KERNEL_LOADS=tma needs Triton 3.3 or later (tensor descriptors); this is Triton {triton.__version__}")
    if loads != "auto":
        return loads == "tma"
    if k.device.type != "cuda" or envs.flag("TRITON_INTERPRET") or not descriptors_available() or torch.cuda.get_device_capability(k.device) < (9, 0):
        return False
    return descriptor_aligned(k) and descriptor_aligned(v)


def launch_sparse_attention(
    q,
    k,
    v,
    out,
    index,
    sm_scale: float,
    num_warps: int | None = None,
    num_stages: int | None = None,
    tma: bool | None = None,
):
    """Launch `_sparse_attn_fwd` over `index` (a SparseIndex) for q [B, H, Nq, D], the last
    Nq of the N keys of k/v [B, Hkv, N, D]; writes `out` (shaped like q) in place. `tma`
    moves the listed blocks' K/V through tensor descriptors (Hopper's bulk copies) instead of
    per-row pointers (unset: `bulk_loads`), and the queries and output too where they are
    `descriptor_aligned` and start on a block boundary; gathered columns always go through
    pointers."""
    B, H, Nq, D = q.shape
    N = k.shape[2]
    group = H // k.shape[1]
    block = index.block
    num_m = index.block_cnt.shape[-1]
    has_cols = index.cols is not None
    cols = index.cols if has_cols else index.block_cnt
    col_cnt = index.col_cnt if has_cols else index.block_cnt
    is_diag = index.is_diag if has_cols else index.block_cnt
    if num_warps is None:
        num_warps = 4 if block <= 64 else 8
    if num_stages is None:
        num_stages = 3 if D <= 64 or block <= 64 else 2
    tma = bulk_loads(k, v) if tma is None else tma
    # Queries and output follow the K/V blocks where a descriptor can address them. A query tile
    # that starts before the queries (a chunk after cached keys that starts inside a block)
    # would be copied from a negative row, which traps on an H100: such chunks move their
    # queries and output through pointers.
    qo_tma = tma and (N - Nq) % block == 0 and descriptor_aligned(q) and descriptor_aligned(out)
    grid = (num_m, B * H)
    _sparse_attn_fwd[grid](
        q,
        k,
        v,
        _descriptor(q, block) if qo_tma else q,
        _descriptor(k, block) if tma else k,
        _descriptor(v, block) if tma else v,
        _descriptor(out, block) if qo_tma else out,
        out,
        index.block_idx,
        index.block_cnt,
        cols,
        col_cnt,
        is_diag,
        sm_scale * LOG2E,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        N,
        H,
        num_m,
        index.block_idx.shape[-1],
        cols.shape[-1] if has_cols else 0,
        N - Nq,
        is_diag.shape[-1],
        GROUP=group,
        HEAD_DIM=D,
        BLOCK=block,
        HAS_COLS=has_cols,
        DOT_F32=q.dtype == torch.bfloat16 and envs.flag("TRITON_INTERPRET"),
        TMA=tma,
        QO_TMA=qo_tma,
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out


@triton.jit
def _block_lse_fwd(
    Qp,
    K,
    Out,
    RowPart,
    scale,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_kb,
    stride_kh,
    stride_kn,
    N,
    H,
    NUM_M,
    NUM_Q,
    FIRST,
    CHUNK,
    NUM_CHUNKS,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK: tl.constexpr,
    BQ: tl.constexpr,
    KG: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Out[b, h, m, kb] = logsumexp over the keys j of block kb of scale * qp[m] . k[j]:
    the log attention mass (unnormalised) that the block-mean query of block m puts on key
    block kb, for kb <= m. Entries above the diagonal are left as they are (the caller
    fills them with -inf). Programs split the key blocks into chunks of CHUNK so the long
    rows of the last query blocks spread over the GPU; each handles KG key blocks per step
    (one wider matrix product, KG adjacent results stored together) and also writes the
    log-sum-exp of its chunk per row to RowPart[b, h, m, chunk], from which the caller
    gets each row's normaliser without reading Out again. Scores are in log2 units inside
    (scale includes log2 e); outputs in natural log. Rows are the NUM_Q query blocks from
    FIRST (a tile of them, or the query blocks of a chunk that follows cached keys);
    Out is [B, H, NUM_Q, NUM_M]."""
    t = tl.program_id(0)
    chunk = tl.program_id(1)
    bh = tl.program_id(2)
    first = chunk * CHUNK
    last = tl.minimum(tl.minimum(FIRST + (t + 1) * BQ, NUM_M), first + CHUNK)
    offs_q = t * BQ + tl.arange(0, BQ)
    abs_q = offs_q + FIRST
    part_ptr = RowPart + (bh.to(tl.int64) * NUM_Q + offs_q) * NUM_CHUNKS + chunk
    run_m = tl.full([BQ], float("-inf"), tl.float32)
    run_s = tl.zeros([BQ], tl.float32)
    if first < last:
        b = (bh // H).to(tl.int64)
        h = (bh % H).to(tl.int64)
        kvh = h // GROUP
        offs_n = tl.arange(0, KG * BLOCK)
        offs_g = tl.arange(0, KG)
        offs_d = tl.arange(0, HEAD_DIM)
        qp = tl.load(Qp + b * stride_qb + h * stride_qh + offs_q[:, None] * stride_qm + offs_d[None, :], mask=offs_q[:, None] < NUM_Q, other=0.0)
        k_base = K + b * stride_kb + kvh * stride_kh
        out_base = Out + bh.to(tl.int64) * NUM_Q * NUM_M + offs_q.to(tl.int64) * NUM_M
        for kb0 in range(first, last, KG):
            cols = kb0 * BLOCK + offs_n
            k = tl.load(k_base + cols.to(tl.int64)[:, None] * stride_kn + offs_d[None, :], mask=cols[:, None] < N, other=0.0)
            if DOT_F32:
                k = k.to(tl.float32)
            s = tl.dot(qp, tl.trans(k)) * scale
            s = tl.where(cols[None, :] < N, s, float("-inf"))
            s3 = tl.reshape(s, [BQ, KG, BLOCK])
            mx = tl.max(s3, 2)
            mx_safe = tl.where(mx == float("-inf"), 0.0, mx)
            # [BQ, KG] in log2 units; a fully masked group sums to 0 and is masked just below
            lse = mx_safe + tl.log2(tl.maximum(tl.sum(tl.exp2(s3 - mx_safe[:, :, None]), 2), 1e-30))
            kbs = kb0 + offs_g
            ok = (abs_q[:, None] >= kbs[None, :]) & (kbs[None, :] < last) & (offs_q[:, None] < NUM_Q)
            lse = tl.where(ok, lse, float("-inf"))
            tl.store(out_base[:, None] + kbs[None, :], lse * 0.6931471805599453, mask=ok)
            new_m = tl.maximum(run_m, tl.max(lse, 1))
            m_safe = tl.where(new_m == float("-inf"), 0.0, new_m)
            run_s = run_s * tl.exp2(run_m - m_safe) + tl.sum(tl.exp2(lse - m_safe[:, None]), 1)
            run_m = new_m
    part = tl.where(run_s > 0, (run_m + tl.log2(tl.maximum(run_s, 1e-30))) * 0.6931471805599453, float("-inf"))
    tl.store(part_ptr, part, mask=offs_q < NUM_Q)


_LSE_CONFIGS = [
    triton.Config({"BQ": 64, "KG": 4}, num_warps=4, num_stages=3),
    triton.Config({"BQ": 64, "KG": 2}, num_warps=4, num_stages=3),
    triton.Config({"BQ": 128, "KG": 2}, num_warps=8, num_stages=3),
    triton.Config({"BQ": 64, "KG": 1}, num_warps=4, num_stages=3),
]
# On the GPU the tile shape is tuned once per shape (writes are idempotent, so the
# repeated timing runs are harmless); the interpreter takes one small fixed tile.
_block_lse_tuned = triton.autotune(configs=_LSE_CONFIGS, key=["NUM_M", "NUM_Q", "HEAD_DIM", "BLOCK"])(_block_lse_fwd)


def launch_block_lse(qp, k, block: int, scale: float, first_block: int = 0):
    """Block log-mass scores [B, H, Mq, M] float32 of the pooled queries qp [B, H, Mq, D]
    of query blocks first_block.. over the M key blocks of k (-inf above the diagonal),
    and each row's log-sum-exp [B, H, Mq]."""
    B, H, Mq, D = qp.shape
    M = triton.cdiv(k.shape[2], block)
    out = torch.full((B, H, Mq, M), float("-inf"), dtype=torch.float32, device=qp.device)
    chunk = 128
    n_chunks = triton.cdiv(M, chunk)
    parts = torch.empty(B, H, Mq, n_chunks, dtype=torch.float32, device=qp.device)
    interp = envs.flag("TRITON_INTERPRET")
    if interp and qp.dtype == torch.bfloat16:
        qp = qp.float()
    args = (
        qp,
        k,
        out,
        parts,
        scale * LOG2E,
        qp.stride(0),
        qp.stride(1),
        qp.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        k.shape[2],
        H,
        M,
        Mq,
        first_block,
        chunk,
        n_chunks,
    )
    meta = dict(GROUP=H // k.shape[1], HEAD_DIM=D, BLOCK=block, DOT_F32=interp and k.dtype == torch.bfloat16)
    if interp or qp.device.type != "cuda":
        bq = 16
        _block_lse_fwd[(triton.cdiv(Mq, bq), n_chunks, B * H)](*args, BQ=bq, KG=2, **meta, num_warps=4, num_stages=1)
    else:
        grid = lambda META: (triton.cdiv(Mq, META["BQ"]), n_chunks, B * H)  # noqa: E731
        _block_lse_tuned[grid](*args, **meta)
    return out, torch.logsumexp(parts, dim=-1)
