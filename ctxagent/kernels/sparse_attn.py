"""Launch wrappers: run the Triton kernel over an index, or the torch reference where
Triton cannot run (CPU without the interpreter)."""

from __future__ import annotations

import torch

from ctxagent.kernels.backends import use_triton
from ctxagent.kernels.index import SparseIndex


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f"q, k, v must be [batch, heads, tokens, head_dim] with k.shape == v.shape; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[2] > k.shape[2] or q.shape[3] != k.shape[3]:
        raise ValueError(
            f"sparse prefill needs at least as many keys as queries (the queries are the last of them) and one batch and head_dim; "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads ({q.shape[1]}) must be a multiple of key/value heads ({k.shape[1]})")


def sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: SparseIndex, scale: float | None = None, *, backend: str = "auto"
) -> torch.Tensor:
    """Causal attention of q [B, H, Nq, D] over k, v [B, Hkv, N, D] restricted to `index`
    (the queries are the last Nq positions; the index built for them).

    backend: "triton", "torch" (the reference), or "auto" (Triton on CUDA, else torch)."""
    check_inputs(q, k, v)
    q_start = k.shape[2] - q.shape[2]
    if index.q_start != q_start:
        raise ValueError(
            f"the index was built for queries from position {index.q_start}, but q holds the last {q.shape[2]} of {k.shape[2]} "
            f"keys (from position {q_start}); build the index from these q and k"
        )
    scale = scale if scale is not None else q.shape[-1] ** -0.5
    if not use_triton(backend, q.device):
        from ctxagent.kernels.reference import sparse_attention_reference

        return sparse_attention_reference(q, k, v, index, scale)
    if q.shape[-1] not in (16, 32, 64, 128, 256):
        raise ValueError(f"the Triton kernel takes head_dim 16, 32, 64, 128 or 256; got {q.shape[-1]}")
    from ctxagent.kernels.triton_kernels import launch_sparse_attention

    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    out = torch.empty_like(q)
    return launch_sparse_attention(q, k, v, out, index, scale)
