"""Block-sparse selection: estimate each (query block, key block) pair's attention mass
cheaply, then keep the heaviest pairs per query block.

Two estimates, both rows of a [M, M] matrix that sums to one per query block:
"pooled" (FlexPrefill's): mean-pooled queries against mean-pooled keys; and "lse" (the
default): mean-pooled queries against every real key, log-sum-exp per key block, which
keeps single heavy keys visible (a fused Triton kernel on GPU).
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


def block_lse_reference(qp: torch.Tensor, k: torch.Tensor, block: int, scale: float) -> torch.Tensor:
    """Torch version of the Triton block-LSE kernel: [B, H, M, M] float32."""
    B, H, M, D = qp.shape
    Hkv, N = k.shape[1], k.shape[2]
    G = H // Hkv
    out = torch.empty(B, H, M, M, dtype=torch.float32, device=qp.device)
    future = torch.ones(M, M, dtype=torch.bool, device=qp.device).triu_(1)
    for h in range(H):
        logits = torch.matmul(qp[:, h].float(), k[:, h // G].float().transpose(-1, -2)) * scale  # [B, M, N]
        logits = torch.nn.functional.pad(logits, (0, M * block - N), value=float("-inf"))
        out[:, h] = torch.logsumexp(logits.view(B, M, M, block), dim=-1).masked_fill_(future, float("-inf"))
    return out


def lse_block_scores(
    q: torch.Tensor, k: torch.Tensor, block: int, scale: float | None = None, *, backend: str = "auto", with_row_lse: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log attention mass of each block's mean query over the real keys, per key block:
    logsumexp_{j in kb} (q_mean(m) . k_j), unnormalised, -inf above the diagonal,
    float32 [B, H, M, M]. It sees single heavy keys (vertical lines) that mean-pooling
    the keys averages away, for one pass of M pooled queries over all N keys (1/64 of
    dense attention's work), fused in Triton on GPU. With `with_row_lse`, also each row's
    log-sum-exp [B, H, M] (the kernel produces it on the way)."""
    from ctxagent.kernels.sparse_attn import triton_usable

    B, H, N, D = q.shape
    scale = scale if scale is not None else D**-0.5
    M = num_blocks(N, block)
    qp = pooled(q, block).to(k.dtype)
    use_triton = backend == "triton" or (backend == "auto" and triton_usable(q.device))
    if use_triton:
        from ctxagent.kernels.triton_kernels import launch_block_lse

        scores, row_lse = launch_block_lse(qp.contiguous(), k if k.stride(-1) == 1 else k.contiguous(), block, scale, M)
    else:
        scores = block_lse_reference(qp, k, block, scale)
        row_lse = torch.logsumexp(scores, dim=-1) if with_row_lse else None
    return (scores, row_lse) if with_row_lse else scores


def lse_block_probs(q: torch.Tensor, k: torch.Tensor, block: int, scale: float | None = None, *, backend: str = "auto") -> torch.Tensor:
    """`lse_block_scores` normalised per query block: rows sum to 1."""
    return torch.softmax(lse_block_scores(q, k, block, scale, backend=backend), dim=-1)


def select_blocks(probs: torch.Tensor, *, gamma: float = 0.95, max_blocks: int = 64, min_blocks: int = 2, block: int = 64) -> SparseIndex:
    """Per query block, the heaviest key blocks until their mass reaches `gamma`, at
    least `min_blocks` and at most `max_blocks` (the diagonal and the first block first).
    `probs` [B, H, M, M] rows sum to 1, zero above the diagonal."""
    return select_blocks_log(probs.log(), gamma=gamma, max_blocks=max_blocks, min_blocks=min_blocks, block=block)


def select_blocks_log(
    scores: torch.Tensor,
    *,
    gamma: float = 0.95,
    max_blocks: int = 64,
    min_blocks: int = 2,
    block: int = 64,
    row_lse: torch.Tensor | None = None,
    inplace: bool = False,
) -> SparseIndex:
    """`select_blocks` on unnormalised log masses (-inf above the diagonal): ranks by
    score and normalises only the kept entries. `row_lse` [B, H, M] saves a pass when
    known; `inplace` lets it overwrite `scores` instead of copying them."""
    B, H, M, _ = scores.shape
    device = scores.device
    m = torch.arange(M, device=device)
    row_lse = (torch.logsumexp(scores, dim=-1) if row_lse is None else row_lse).unsqueeze(-1)
    diag = scores.diagonal(dim1=-2, dim2=-1).clone()  # the forced entries' own scores
    first = scores[..., :, 0].clone()
    rank = scores if inplace else scores.clone()
    rank[..., :, 0] = 1e30  # forced: the diagonal first, then the first block
    rank.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
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
    return SparseIndex(block, idx.to(torch.int32).contiguous(), block_cnt)


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
    query over mean keys) + cumulative-mass selection, in one call."""
    if estimate == "lse":
        scores, row_lse = lse_block_scores(q, k, block, scale, backend=backend, with_row_lse=True)
    elif estimate == "pooled":
        scores, row_lse = pooled_block_probs(q, k, block, scale).log(), None
    else:
        raise ValueError(f"block-sparse estimate must be 'lse' or 'pooled'; got {estimate!r}")
    return select_blocks_log(scores, gamma=gamma, max_blocks=max_blocks, min_blocks=min_blocks, block=block, row_lse=row_lse, inplace=True)
