"""Block-sparse selection: estimate each (query block, key block) pair's attention mass
cheaply, then keep the heaviest pairs per query block.

Two estimates, both rows of a [M, M] matrix that sums to one per query block:
"pooled" (FlexPrefill's): mean-pooled queries against mean-pooled keys; and "lse" (the
default): mean-pooled queries against every real key, log-sum-exp per key block, which
keeps single heavy keys visible (a fused Triton kernel on GPU).
Selection keeps, per query block, the fewest blocks whose estimated mass reaches `gamma`
(the adaptive rule of FlexPrefill / XAttention), capped at `max_blocks`, with the
diagonal block and the first (sink) block always in. Everything is torch on the inputs'
device: O(M^2) scores for M = N / block, small next to the attention itself, computed
a tile of query blocks at a time so the float32 score matrix never exceeds
`SCORE_TILE_BYTES` (a [B, H, M, M] matrix would be 34 GB at 1M tokens).

Queries may be the last Nq of Nk keys (see `index`): query blocks are counted on the
keys' block grid, the first one partial when Nk - Nq is not a multiple of the block.
"""

from __future__ import annotations

import torch

from ctxagent.kernels.backends import use_triton
from ctxagent.kernels.index import SparseIndex, num_blocks

SCORE_TILE_BYTES = 1 << 30


def pooled(x: torch.Tensor, block: int, offset: int = 0) -> torch.Tensor:
    """Mean over each block of `block` rows, where the rows of x start `offset` rows into
    their first block (the partial first and last blocks averaged over their real rows).
    float32 [B, H, M, D], summed from strided views: no float32 (or padded) copy of x,
    which would be 16 GB for q at 1M tokens."""
    B, H, N, D = x.shape
    first = min(N, (block - offset) % block)  # rows of a partial first block (0 when aligned)
    body_end = first + (N - first) // block * block
    sums, counts = [], []
    if first:
        sums.append(x[:, :, :first].sum(2, keepdim=True, dtype=torch.float32))
        counts.append(first)
    if body_end > first:
        sums.append(x[:, :, first:body_end].unflatten(2, (-1, block)).sum(3, dtype=torch.float32))
        counts += [block] * ((body_end - first) // block)
    if body_end < N:
        sums.append(x[:, :, body_end:].sum(2, keepdim=True, dtype=torch.float32))
        counts.append(N - body_end)
    # the divisors built on the device (a host list copied over would sync the stream)
    divisors = torch.full((len(counts), 1), float(block), dtype=torch.float32, device=x.device)
    if counts[0] != block:
        divisors[0] = float(counts[0])
    if counts[-1] != block:
        divisors[-1] = float(counts[-1])
    return torch.cat(sums, 2) / divisors


def pooled_block_probs(q: torch.Tensor, k: torch.Tensor, block: int, scale: float | None = None) -> torch.Tensor:
    """FlexPrefill's estimate: softmax over key blocks of mean-pooled q . mean-pooled k.
    float32 [B, H, M, M], rows sum to 1, zero above the block diagonal. Cheap, but a
    single heavy key is diluted 64-fold in its block's mean, so it misses vertical lines."""
    B, H, N, D = q.shape
    Hkv = k.shape[1]
    G = H // Hkv
    scale = scale if scale is not None else D**-0.5
    M = num_blocks(N, block)
    qp = pooled(q, block).view(B, Hkv, G * M, D)
    kp = pooled(k, block)
    scores = torch.matmul(qp, kp.transpose(-1, -2)).view(B, H, M, M).mul_(scale)
    future = torch.ones(M, M, dtype=torch.bool, device=q.device).triu_(1)
    scores.masked_fill_(future, float("-inf"))
    return torch.softmax(scores, dim=-1)


def block_lse_reference(qp: torch.Tensor, k: torch.Tensor, block: int, scale: float, first_block: int = 0) -> torch.Tensor:
    """Torch version of the Triton block-LSE kernel: [B, H, Mq, M] float32 for the pooled
    queries qp [B, H, Mq, D] of query blocks first_block.. over the M key blocks of k."""
    B, H, Mq, D = qp.shape
    Hkv, N = k.shape[1], k.shape[2]
    M = num_blocks(N, block)
    G = H // Hkv
    out = torch.empty(B, H, Mq, M, dtype=torch.float32, device=qp.device)
    future = torch.ones(Mq, M, dtype=torch.bool, device=qp.device).triu_(1 + first_block)
    for h in range(H):
        logits = torch.matmul(qp[:, h].float(), k[:, h // G].float().transpose(-1, -2)) * scale  # [B, M, N]
        logits = torch.nn.functional.pad(logits, (0, M * block - N), value=float("-inf"))
        out[:, h] = torch.logsumexp(logits.view(B, Mq, M, block), dim=-1).masked_fill_(future, float("-inf"))
    return out


def lse_block_scores(
    q: torch.Tensor,
    k: torch.Tensor,
    block: int,
    scale: float | None = None,
    *,
    backend: str = "auto",
    with_row_lse: bool = False,
    tile: tuple[int, int] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log attention mass of each block's mean query over the real keys, per key block:
    logsumexp_{j in kb} (q_mean(m) . k_j), unnormalised, -inf above the diagonal,
    float32 [B, H, M, M]. It sees single heavy keys (vertical lines) that mean-pooling
    the keys averages away, for one pass of M pooled queries over all N keys (1/64 of
    dense attention's work), fused in Triton on GPU. With `with_row_lse`, also each row's
    log-sum-exp [B, H, M] (the kernel produces it on the way). q may be the last Nq rows
    of the Nk keys; then the rows are its query blocks. `tile` = (first, end) limits the
    rows to those index rows (0-based among the query blocks)."""
    q_start = k.shape[2] - q.shape[2]
    qp = pooled(q, block, q_start % block)
    first, end = tile or (0, qp.shape[2])
    return _lse_scores_pooled(qp[:, :, first:end], k, block, q_start // block + first, scale, backend, with_row_lse)


def _lse_scores_pooled(qp, k, block, first_block, scale, backend, with_row_lse):
    scale = scale if scale is not None else qp.shape[-1] ** -0.5
    qp = qp.to(k.dtype)
    if use_triton(backend, qp.device):
        from ctxagent.kernels.triton_kernels import launch_block_lse

        scores, row_lse = launch_block_lse(qp.contiguous(), k if k.stride(-1) == 1 else k.contiguous(), block, scale, first_block)
    else:
        scores = block_lse_reference(qp, k, block, scale, first_block)
        row_lse = torch.logsumexp(scores, dim=-1) if with_row_lse else None
    return (scores, row_lse) if with_row_lse else scores


def lse_block_probs(q: torch.Tensor, k: torch.Tensor, block: int, scale: float | None = None, *, backend: str = "auto") -> torch.Tensor:
    """`lse_block_scores` normalised per query block: rows sum to 1."""
    return torch.softmax(lse_block_scores(q, k, block, scale, backend=backend), dim=-1)


def select_blocks(probs: torch.Tensor, *, gamma: float = 0.95, max_blocks: int = 64, min_blocks: int = 2, block: int = 64, q_start: int = 0) -> SparseIndex:
    """Per query block, the heaviest key blocks until their mass reaches `gamma`, at
    least `min_blocks` and at most `max_blocks` (the diagonal and the first block first).
    `probs` [B, H, Mq, M] rows sum to 1, zero above the diagonal."""
    return select_blocks_log(probs.log(), gamma=gamma, max_blocks=max_blocks, min_blocks=min_blocks, block=block, q_start=q_start)


def select_blocks_log(
    scores: torch.Tensor,
    *,
    gamma: float = 0.95,
    max_blocks: int = 64,
    min_blocks: int = 2,
    block: int = 64,
    row_lse: torch.Tensor | None = None,
    inplace: bool = False,
    q_start: int = 0,
    first_block: int | None = None,
) -> SparseIndex:
    """`select_blocks` on unnormalised log masses (-inf above the diagonal): ranks by
    score and normalises only the kept entries. `row_lse` [B, H, Mq] saves a pass when
    known; `inplace` lets it overwrite `scores` instead of copying them. Row i of
    `scores` is query block `first_block + i` (default: q_start's block)."""
    B, H, Mq, M = scores.shape
    device = scores.device
    f = q_start // block if first_block is None else first_block
    m = torch.arange(f, f + Mq, device=device)
    row_lse = (torch.logsumexp(scores, dim=-1) if row_lse is None else row_lse).unsqueeze(-1)
    diag = scores.diagonal(offset=f, dim1=-2, dim2=-1).clone()  # the forced entries' own scores
    first = scores[..., :, 0].clone()
    rank = scores if inplace else scores.clone()
    rank[..., :, 0] = 1e30  # forced: the diagonal first, then the first block
    rank.diagonal(offset=f, dim1=-2, dim2=-1).fill_(float("inf"))
    kmax = min(max_blocks, M)
    top = torch.topk(rank, kmax, dim=-1, sorted=True)
    idx = top.indices
    own = top.values
    own = torch.where(idx == m[:, None], diag.unsqueeze(-1), own)
    own = torch.where((idx == 0) & (idx != m[:, None]), first.unsqueeze(-1), own)
    mass = torch.exp(own - row_lse)
    before = mass.cumsum(-1) - mass  # mass of the blocks ranked above
    position = torch.arange(kmax, device=device)
    causal = idx <= m[:, None]
    keep = ((before < gamma) | (position < min_blocks) | (top.values >= 1e30)) & causal
    block_cnt = keep.int().cumprod(-1).sum(-1, dtype=torch.int32)  # the kept prefix
    return SparseIndex(block, idx.to(torch.int32).contiguous(), block_cnt, q_start=q_start)


def block_sparse_index(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    gamma: float = 0.95,
    max_blocks: int = 64,
    min_blocks: int = 2,
    estimate: str = "lse",
    block: int = 64,
    scale: float | None = None,
    backend: str = "auto",
) -> SparseIndex:
    """Block estimate (`estimate`: "lse" = mean query over real keys, "pooled" = mean
    query over mean keys) + cumulative-mass selection, in one call, a tile of query
    blocks at a time (at most SCORE_TILE_BYTES of scores)."""
    if estimate not in ("lse", "pooled"):
        raise ValueError(f"block-sparse estimate must be 'lse' or 'pooled'; got {estimate!r}")
    B, H, Nq, _ = q.shape
    Nk = k.shape[2]
    q_start = Nk - Nq
    M = num_blocks(Nk, block)
    Mq = M - q_start // block
    rows_per_tile = max(1, SCORE_TILE_BYTES // (B * H * M * 4))
    if estimate == "pooled" and (q_start or rows_per_tile < Mq):
        raise ValueError(
            f"the 'pooled' block estimate needs a whole prefill that fits one score tile (here {Nq} queries over {Nk} keys); use estimate='lse'"
        )
    parts = []
    for first in range(0, Mq, rows_per_tile):
        end = min(Mq, first + rows_per_tile)
        if estimate == "lse":
            scores, row_lse = lse_block_scores(q, k, block, scale, backend=backend, with_row_lse=True, tile=(first, end))
        else:
            scores, row_lse = pooled_block_probs(q, k, block, scale).log(), None
        parts.append(
            select_blocks_log(
                scores, gamma=gamma, max_blocks=max_blocks, min_blocks=min_blocks, block=block, row_lse=row_lse, inplace=True,
                q_start=q_start, first_block=q_start // block + first,
            )
        )
        del scores, row_lse
    if len(parts) == 1:
        return parts[0]
    block_idx = torch.cat([p.block_idx for p in parts], dim=2)
    block_cnt = torch.cat([p.block_cnt for p in parts], dim=2)
    return SparseIndex(block, block_idx, block_cnt, q_start=q_start)
