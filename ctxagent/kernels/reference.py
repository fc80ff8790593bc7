"""Plain-torch ground truth: the token mask an index stands for, masked attention over it,
dense causal attention, and attention recall. Also the CPU fallback for the kernels.
"""

from __future__ import annotations

import torch

from ctxagent.kernels.index import SparseIndex, num_blocks


def index_mask_rows(index: SparseIndex, rows: torch.Tensor, n: int, head: int | None = None) -> torch.Tensor:
    """Boolean mask [B, H, R, N] (or [B, R, N] for one `head`) of the keys that `index`
    computes for query rows `rows` (positions among the n keys, at or after the index's
    q_start), causal (a key after its query is never in)."""
    block = index.block
    rows = rows.to(index.block_cnt.device).long()
    qb = rows // block - index.first_block
    sel = slice(None) if head is None else head
    M = num_blocks(n, block)
    # Per query block first (M rows, not R), then pick each row's block.
    block_idx = index.block_idx[:, sel].long()  # [B, (H), M, MAXB]
    listed = torch.arange(block_idx.shape[-1], device=rows.device) < index.block_cnt[:, sel][..., None]
    blocks = torch.zeros(*block_idx.shape[:-1], M + 1, dtype=torch.bool, device=rows.device)  # [B, (H), Mq, M + 1]
    blocks.scatter_(-1, torch.where(listed, block_idx, M), True)
    blocks = blocks[..., qb, :M]  # [B, (H), R, M]
    mask = blocks.unsqueeze(-1).expand(*blocks.shape, block).reshape(*blocks.shape[:-1], M * block)[..., :n]
    if index.cols is not None:
        cols = index.cols[:, sel].long()  # [B, (H), C], sorted
        # col_cnt counts a prefix of the sorted columns; with causality applied below,
        # every listed column at or before the row is exactly the prefix that matters.
        col_cnt = index.col_cnt[:, sel][..., qb]  # [B, (H), R]
        listed = torch.arange(cols.shape[-1], device=rows.device) < col_cnt[..., None]
        target = torch.where(listed, cols.unsqueeze(-2).expand(*listed.shape), n)
        colmask = torch.zeros(*listed.shape[:-1], n + 1, dtype=torch.bool, device=rows.device)
        colmask.scatter_(-1, target, True)
        mask = mask | colmask[..., :n]
    causal = torch.arange(n, device=rows.device)[None, :] <= rows[:, None]
    return mask & causal


def index_to_mask(index: SparseIndex, n: int) -> torch.Tensor:
    """Full boolean mask [B, H, Nq, N] (rows q_start..n-1); small sizes only."""
    return index_mask_rows(index, torch.arange(index.q_start, n), n)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Softmax attention in float32 over `mask` [B, H, Nq, Nk] (every row must keep at
    least one key); GQA by repeating K/V. SDPA's math, which is fast on CPU too."""
    H, Hkv = q.shape[1], k.shape[1]
    scale = scale if scale is not None else q.shape[-1] ** -0.5
    kk = k.float().repeat_interleave(H // Hkv, dim=1)
    vv = v.float().repeat_interleave(H // Hkv, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(q.float(), kk, vv, attn_mask=mask, scale=scale)
    return out.to(q.dtype)


def dense_causal_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Causal attention of q (the last Nq positions) over all of k, v, in float32."""
    nq, n = q.shape[2], k.shape[2]
    causal = torch.ones(nq, n, dtype=torch.bool, device=q.device).tril_(n - nq)
    return masked_attention(q, k, v, causal.expand(q.shape[0], q.shape[1], nq, n), scale)


def sparse_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: SparseIndex, scale: float | None = None) -> torch.Tensor:
    """What the Triton kernel computes, in plain torch, row chunk by row chunk so memory
    stays at O(chunk * N) per head. q may be the last Nq of the N keys."""
    B, H, Nq, D = q.shape
    N = k.shape[2]
    q_start = N - Nq
    out = torch.empty_like(q)
    chunk = max(1, min(Nq, (1 << 22) // max(1, N * H)))
    for start in range(0, Nq, chunk):
        rows = torch.arange(q_start + start, q_start + min(Nq, start + chunk), device=q.device)
        mask = index_mask_rows(index, rows, N).to(q.device)
        out[:, :, start : start + len(rows)] = masked_attention(q[:, :, start : start + len(rows)], k, v, mask, scale)
    return out


def attention_recall(q: torch.Tensor, k: torch.Tensor, index: SparseIndex, rows: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Share of each query row's true causal attention mass that falls on the keys the
    index computes, averaged over `rows` (positions among the keys; q holds the last Nq):
    float32 [B, H]. A few heads at a time, so 128K keys times a few hundred rows fit in
    memory."""
    B, H, Nq, D = q.shape
    N = k.shape[2]
    G = H // k.shape[1]
    scale = scale if scale is not None else D**-0.5
    rows = rows.to(q.device).long()
    causal = torch.arange(N, device=q.device)[None, :] <= rows[:, None]
    out = torch.empty(B, H, dtype=torch.float32, device=q.device)
    step = max(1, min(H, (1 << 24) // max(1, B * len(rows) * N)))  # heads per pass
    for h0 in range(0, H, step):
        hs = list(range(h0, min(H, h0 + step)))
        kk = k[:, [h // G for h in hs]].float()
        logits = torch.matmul(q[:, hs][:, :, rows - (N - Nq)].float(), kk.transpose(-1, -2)) * scale
        probs = torch.softmax(logits.masked_fill_(~causal, float("-inf")), dim=-1)
        mask = torch.stack([index_mask_rows(index, rows, N, head=h) for h in hs], 1).to(q.device)
        out[:, hs] = (probs * mask).sum(-1).mean(-1)
    return out
