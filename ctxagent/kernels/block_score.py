"""Block-sparse selection: estimate each (query block, key block) pair's attention mass
cheaply, then keep the heaviest pairs per query block.

The estimate is FlexPrefill's pooled one: mean-pool queries and keys over each block,
softmax the pooled scores over the causal key blocks, so a row of estimates sums to one.
Selection keeps, per query block, the fewest blocks whose estimated mass reaches `gamma`
(the adaptive rule of FlexPrefill / XAttention), capped at `max_blocks`, with the
diagonal block and the first (sink) block always in. Everything is torch on the inputs'
device: O(M^2) scores for M = N / block, small next to the attention itself.
"""

from __future__ import annotations

import torch

from ctxagent.kernels.index import SparseIndex, num_blocks


def pooled(x: torch.Tensor, block: int) -> torch.Tensor:
    """Mean over each block of `block` rows (the last, partial block over its real rows)."""
    B, H, N, D = x.shape
    M = num_blocks(N, block)
    padded = torch.nn.functional.pad(x.float(), (0, 0, 0, M * block - N))
    sums = padded.view(B, H, M, block, D).sum(3)
    counts = torch.full((M,), float(block), device=x.device)
    counts[-1] = N - (M - 1) * block
    return sums / counts[:, None]


def pooled_block_probs(q: torch.Tensor, k: torch.Tensor, block: int, scale: float | None = None) -> torch.Tensor:
    """Estimated attention mass per block pair, float32 [B, H, M, M], rows sum to 1,
    zero above the block diagonal."""
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


def select_blocks(probs: torch.Tensor, *, gamma: float = 0.95, max_blocks: int = 64, min_blocks: int = 2, block: int = 64) -> SparseIndex:
    """Per query block, the heaviest key blocks until their mass reaches `gamma`, at
    least `min_blocks` and at most `max_blocks` (the diagonal and the first block first)."""
    B, H, M, _ = probs.shape
    device = probs.device
    m = torch.arange(M, device=device)
    causal = m[None, :] <= m[:, None]
    rank = torch.where(causal, probs, torch.full_like(probs, -1.0))
    rank[..., m, m] = 3.0  # the diagonal block: always, first
    rank[..., :, 0] = torch.where(causal[:, 0], torch.full_like(rank[..., :, 0], 2.0), rank[..., :, 0])
    kmax = min(max_blocks, M)
    top = torch.topk(rank, kmax, dim=-1, sorted=True)
    mass = probs.gather(-1, top.indices)
    before = mass.cumsum(-1) - mass  # mass of the blocks ranked above
    position = torch.arange(kmax, device=device)
    keep = ((before < gamma) | (position < min_blocks)) & (top.values >= 0)
    block_cnt = keep.sum(-1, dtype=torch.int32)
    block_idx = top.indices.to(torch.int32).contiguous()
    return SparseIndex(block, block_idx, block_cnt)


def block_sparse_index(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    gamma: float = 0.95,
    max_blocks: int = 64,
    min_blocks: int = 2,
    block: int = 64,
    scale: float | None = None,
) -> SparseIndex:
    """Pooled estimate + cumulative-mass selection, in one call."""
    probs = pooled_block_probs(q, k, block, scale)
    return select_blocks(probs, gamma=gamma, max_blocks=max_blocks, min_blocks=min_blocks, block=block)
