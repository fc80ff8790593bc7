"""Synthetic q/k/v with the structure measured in LLM attention maps, for benchmarks and tests.

Uniform random q/k give near-uniform attention, which no sparse pattern can capture (its
recall is about its density), and which no trained model shows. LLM heads put most of
their mass on a few kinds of keys (MInference, StreamingLLM): the first tokens (sinks),
a few globally important tokens (vertical lines), the recent tokens (a local diagonal)
and tokens at a fixed distance (slash lines). We build q and k so that their dot products
have exactly those parts, in separate dimension groups of each head:

- dims [0, D/2): rotary position codes, q_i . k_j = sum_f a cos(w_f (i - j)) +
  b cos(w_f (i - j - s)): a local peak (height L_local) and a slash line at distance s
  (height L_slash), with 32 frequencies as in RoPE. Far from both peaks these terms
  behave like noise of standard deviation about (L_local + L_slash) / 8 logits.
- dims [D/2, 3D/4): a direction every query shares, present in the keys of 4 sink
  tokens (logit L_sink) and of n_heavy randomly placed heavy-hitter tokens (L_heavy).
- dims [3D/4, D): Gaussian noise (about 0.5 logits).

Each KV head draws its own heights, distance and heavy-hitter count, so heads differ
(local-dominated, sink-dominated, slash-heavy); the query heads of a group share the
structure and differ by their noise. Values are Gaussian. Everything is generated from a
seed, on the requested device.
"""

from __future__ import annotations

import math

import torch


def structured_qkv(
    batch: int,
    heads: int,
    kv_heads: int,
    n: int,
    dim: int = 128,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if dim % 8:
        raise ValueError(f"dim must be a multiple of 8, got {dim}")
    g = torch.Generator(device="cpu").manual_seed(seed)
    G = heads // kv_heads
    half, quarter = dim // 2, dim // 4
    n_freq = half // 2
    root_d = math.sqrt(dim)
    pos = torch.arange(n, device=device, dtype=torch.float64)
    freqs = torch.logspace(0, -math.log10(512), n_freq, dtype=torch.float64).to(device)
    q = torch.empty(batch, heads, n, dim, device=device, dtype=torch.float32)
    k = torch.empty(batch, kv_heads, n, dim, device=device, dtype=torch.float32)

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    for b in range(batch):
        for h in range(kv_heads):
            l_local, l_slash = u(13.0, 17.0), u(0.0, 12.0)
            l_sink, l_heavy = u(11.0, 15.0), u(9.0, 12.5)
            shift = int(torch.randint(64, max(65, min(n // 2, 4096)), (), generator=g))
            n_heavy = int(torch.randint(16, 257, (), generator=g))
            # rotary part: k_j = R(j) e1 per frequency; q_i = R(i) (a e1 + b R(-s) e1)
            ang_k = pos[:, None] * freqs[None, :]
            kr = torch.stack([torch.cos(ang_k), torch.sin(ang_k)], -1).reshape(n, half)
            a = l_local * root_d / n_freq
            bb = l_slash * root_d / n_freq
            qc = a * torch.cos(ang_k) + bb * torch.cos(ang_k - shift * freqs[None, :])
            qs = a * torch.sin(ang_k) + bb * torch.sin(ang_k - shift * freqs[None, :])
            qr = torch.stack([qc, qs], -1).reshape(n, half)
            # global part: a shared direction, in sinks and heavy hitters only
            direction = torch.randn(quarter, generator=g, dtype=torch.float64)
            direction = (direction / direction.norm()).to(device)
            kg = torch.zeros(n, quarter, device=device, dtype=torch.float64)
            kg[: min(4, n)] = direction * (l_sink * root_d)
            heavy = torch.randperm(n, generator=g)[:n_heavy].to(device)
            kg[heavy] = direction * (l_heavy * root_d)
            k[b, h, :, :half] = kr.float()
            k[b, h, :, half : half + quarter] = kg.float()
            k[b, h, :, half + quarter :] = torch.randn(n, dim - half - quarter, generator=g).to(device)
            for j in range(G):
                qh = q[b, h * G + j]
                qh[:, :half] = qr.float()
                qh[:, half : half + quarter] = direction.float()
                qh[:, half + quarter :] = torch.randn(n, dim - half - quarter, generator=g).to(device)
    v = torch.randn(batch, kv_heads, n, dim, generator=g).to(device)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def random_qkv(batch: int, heads: int, kv_heads: int, n: int, dim: int = 128, *, seed: int = 0, device="cpu", dtype=torch.float32):
    """Unstructured Gaussian q/k/v: near-uniform attention, the worst case for any sparse pattern."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(batch, heads, n, dim, generator=g)
    k = torch.randn(batch, kv_heads, n, dim, generator=g)
    v = torch.randn(batch, kv_heads, n, dim, generator=g)
    return q.to(device, dtype), k.to(device, dtype), v.to(device, dtype)
