"""Offline per-head pattern search: run a model once (dense) over calibration text, and
for every (layer, query head) keep the cheapest candidate pattern whose attention recall
on that text reaches the target. Writes a SparseConfig (JSON).

    python -m ctxagent.kernels.search calibration.txt -o sparse.json [--model PATH] [--tokens 4096] [--budget 0.15]

Budgets are absolute token counts (the CLI's candidates are fractions of the calibration
length, `length_candidates`), so calibrate on text about as long as the prompts the
config will serve: a budget that is dense at 2K tokens is very sparse at 128K.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ctxagent.kernels.attention import pattern_index
from ctxagent.kernels.config import DEFAULT_DENSE_TAIL, HeadPattern, SparseConfig
from ctxagent.kernels.reference import attention_recall

DEFAULT_CANDIDATES: tuple[HeadPattern, ...] = (
    HeadPattern.make("a_shape", sink=64, local=512),
    HeadPattern.make("a_shape", sink=64, local=1024),
    HeadPattern.make("vertical_slash", n_vertical=256, n_diag=8),
    HeadPattern.make("vertical_slash", n_vertical=512, n_diag=16),
    HeadPattern.make("a_shape", sink=64, local=2048),
    HeadPattern.make("vertical_slash", n_vertical=1024, n_diag=32),
    HeadPattern.make("block_sparse", gamma=0.9, max_blocks=64),
    HeadPattern.make("block_sparse", gamma=0.95, max_blocks=128),
    HeadPattern.make("vertical_slash", n_vertical=2048, n_diag=64),
)


def length_candidates(tokens: int, block: int = 64) -> tuple[HeadPattern, ...]:
    """Candidates for prompts of about `tokens` tokens: fixed budgets as fractions of the
    length (about 3% to 45% of the causal matrix) and budgets that adapt per head and
    prompt (gamma; spread_q: estimate from rows across the prompt, not only its end).

    More candidates give the per-head selection more to choose from (on the calibration
    text it does as well or better, up to the greedy allocation's last step); they cost
    search time, linearly.
    The second group (denser estimates, cheaper steps between budgets, `per_row`
    rankings, longer last-query estimates) was added after the first 21 reached 0.951
    held-out recall at 15% density on SmolLM2 at 32K (docs/kernels.md has the figures)."""
    n, m = tokens, tokens // block
    vs = lambda nv, nd, **kw: HeadPattern.make("vertical_slash", n_vertical=nv, n_diag=max(2, nd), **{"last_q": 64, **kw})  # noqa: E731
    bs = lambda gamma, cap: HeadPattern.make("block_sparse", gamma=gamma, max_blocks=max(2, cap))  # noqa: E731
    return (
        HeadPattern.make("a_shape", sink=block, local=n // 32),
        HeadPattern.make("a_shape", sink=block, local=n // 16),
        HeadPattern.make("a_shape", sink=block, local=n // 8),
        HeadPattern.make("a_shape", sink=block, local=n // 4),
        vs(n // 32, m // 32),
        vs(n // 64, m // 64, spread_q=64),
        vs(n // 32, m // 32, spread_q=64),
        vs(n // 16, m // 16, spread_q=64),
        vs(n // 8, m // 16, spread_q=64),
        vs(n // 8, m // 8, spread_q=64),
        vs(n // 4, m // 8, spread_q=64),
        vs(n // 32, m // 32, spread_q=256),
        vs(n // 16, m // 16, spread_q=256),
        vs(n // 8, m // 16, spread_q=256),
        vs(n // 8, m // 8, spread_q=64, gamma=0.7),
        vs(n // 8, m // 8, spread_q=64, gamma=0.8),
        vs(n // 8, m // 8, spread_q=64, gamma=0.9),
        bs(0.9, m // 16),
        bs(0.95, m // 8),
        bs(0.98, m // 4),
        bs(0.99, m // 2),
        # the second group
        vs(n // 64, m // 64, spread_q=256),
        vs(n // 32, m // 64, spread_q=256),
        vs(n // 16, m // 32, spread_q=256),
        vs(n // 32, m // 32, spread_q=1024),
        vs(n // 16, m // 16, spread_q=1024),
        vs(n // 8, m // 16, spread_q=1024),
        vs(n // 8, m // 8, spread_q=256, gamma=0.8),
        vs(n // 8, m // 8, spread_q=256, gamma=0.9),
        vs(n // 4, m // 8, spread_q=256, gamma=0.9),
        vs(n // 4, m // 8, spread_q=256, gamma=0.95),
        bs(0.93, m // 8),
        bs(0.95, m // 4),
        bs(0.97, m // 4),
        vs(n // 16, m // 16, spread_q=256, per_row=True),
        vs(n // 8, m // 16, spread_q=256, per_row=True),
        vs(n // 8, m // 8, spread_q=256, per_row=True),
        vs(n // 4, m // 8, spread_q=256, per_row=True),
        vs(n // 16, m // 16, spread_q=256, last_q=256),
        vs(n // 8, m // 16, spread_q=256, last_q=256),
    )


def fast_candidates(tokens: int, block: int = 64) -> tuple[HeadPattern, ...]:
    """Candidates whose index is as cheap as the default's: vertical-slash estimated from
    the last 64 queries only, and A-shape (no estimate at all).

    Time to first token, not density alone, is what a config is for. On a GPU at 128K the
    estimates that `length_candidates` adds (rows spread over the prompt, block-LSE for
    block_sparse) cost 8-18 ms per layer (benchmarks/results/mixed_patterns_gpu.md), about
    as much as the default's whole attention; a config searched over them answered best at
    128K but ran only 2.1-2.6x faster than dense (needles_qwen_128k.md). Here every head's
    estimate is the same last-rows product, so the index costs the same whatever the
    search picks and time follows density."""
    n, m = tokens, tokens // block
    vs = lambda nv, nd: HeadPattern.make("vertical_slash", n_vertical=max(block, nv), n_diag=max(2, nd), last_q=64)  # noqa: E731
    return (
        HeadPattern.make("a_shape", sink=block, local=n // 32),
        HeadPattern.make("a_shape", sink=block, local=n // 16),
        HeadPattern.make("a_shape", sink=block, local=n // 8),
        vs(n // 256, m // 128),
        vs(n // 128, m // 64),
        vs(n // 64, m // 64),
        vs(n // 64, m // 32),
        vs(n // 32, m // 32),
        vs(n // 32, m // 16),
        vs(n // 16, m // 16),
        vs(n // 8, m // 16),
        vs(n // 8, m // 8),
        vs(n // 4, m // 8),
    )


@dataclass
class SearchResult:
    config: SparseConfig
    # per layer, per head: (chosen pattern, its recall, its density)
    choices: dict[int, list[tuple[HeadPattern, float, float]]] = field(default_factory=dict)
    # per candidate: mean recall and density over all heads
    candidate_recall: dict[HeadPattern, tuple[float, float]] = field(default_factory=dict)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for heads in self.choices.values():
            for pattern, _, _ in heads:
                counts[pattern.kind] = counts.get(pattern.kind, 0) + 1
        recalls = [r for heads in self.choices.values() for _, r, _ in heads]
        dens = [d for heads in self.choices.values() for _, _, d in heads]
        mean = sum(recalls) / max(1, len(recalls))
        return f"heads by pattern {counts}; mean recall {mean:.3f}; mean density {sum(dens) / max(1, len(dens)):.3f}"


class _Collector:
    """Recorder for the attention function: scores every candidate on every head as the
    layer's q/k go by (nothing is stored but the numbers)."""

    def __init__(self, candidates: Sequence[HeadPattern], block: int, rows: int, backend: str = "auto") -> None:
        self.candidates = list(candidates)
        self.backend = backend
        self.block, self.rows = block, rows
        self.recall: dict[int, torch.Tensor] = {}  # layer -> [candidates, H]
        self.density: dict[int, torch.Tensor] = {}

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor) -> None:
        # Many small tensor ops: on CPU one thread beats a team that spins waiting.
        threads = torch.get_num_threads()
        if q.device.type == "cpu":
            torch.set_num_threads(1)
        try:
            self._score(layer, q, k)
        finally:
            torch.set_num_threads(threads)

    def _score(self, layer: int, q: torch.Tensor, k: torch.Tensor) -> None:
        B, H, N, _ = q.shape
        gen = torch.Generator().manual_seed(layer)
        rows = torch.randint(0, N, (self.rows,), generator=gen).sort().values
        rows = torch.cat([rows, torch.tensor([N - 1])]).to(q.device)
        rec = torch.zeros(len(self.candidates), H)
        den = torch.zeros(len(self.candidates), H)
        for c, pattern in enumerate(self.candidates):
            index = pattern_index(q, k, pattern, self.block, backend=self.backend)
            rec[c] = attention_recall(q, k, index, rows).mean(0).cpu()
            den[c] = head_density(index, N).mean(0).cpu()
        self.recall[layer] = rec
        self.density[layer] = den


def head_density(index, n: int) -> torch.Tensor:
    """Computed share of the causal matrix per head, [B, H] (columns counted whole)."""
    computed = index.block_cnt.double().sum(-1) * index.block * index.block
    if index.col_cnt is not None:
        computed += index.col_cnt.double().sum(-1) * index.block
    return (computed / (n * (n + 1) / 2)).clamp(max=1.0).float()


def search_config(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    *,
    target_recall: float = 0.95,
    candidates: Sequence[HeadPattern] = DEFAULT_CANDIDATES,
    rows: int = 64,
    block: int = 64,
    min_length: int = 8192,
    backend: str | None = None,
    density_budget: float | None = None,
) -> SearchResult:
    """Score `candidates` on every head of `model` over `input_ids` [1, N] and pick, per
    head, the lowest-density candidate with recall >= target_recall (dense if none).

    With `density_budget`, pick instead the per-head assignment with the highest mean
    recall whose mean density stays within the budget (dense is one more candidate):
    heads differ so much that one recall floor for all spends most of the budget on the
    few heads no sparse pattern serves (see `allocate_density`)."""
    recall, density = score_candidates(model, input_ids, candidates, rows=rows, block=block, backend=backend)
    return select_config(
        recall, density, candidates, target_recall=target_recall, density_budget=density_budget, block=block, min_length=min_length
    )


def select_config(
    recall: dict[int, torch.Tensor],
    density: dict[int, torch.Tensor],
    candidates: Sequence[HeadPattern],
    *,
    target_recall: float = 0.95,
    density_budget: float | None = None,
    block: int = 64,
    min_length: int = 8192,
) -> SearchResult:
    """Per-head choices from `score_candidates`' tables, as `search_config` describes."""
    result = SearchResult(SparseConfig(block=block, min_length=min_length))
    dense = HeadPattern.make("dense")
    layers = sorted(recall)
    if density_budget is not None:
        options = list(candidates) + [dense]
        rec = torch.stack([torch.cat([recall[l], torch.ones(1, recall[l].shape[1])]) for l in layers])
        den = torch.stack([torch.cat([density[l], torch.ones(1, density[l].shape[1])]) for l in layers])
        pick = allocate_density(rec, den, density_budget)
        for i, layer in enumerate(layers):
            heads = [(options[int(c)], float(rec[i, c, h]), float(den[i, c, h])) for h, c in enumerate(pick[i])]
            result.choices[layer] = heads
            result.config.layers[layer] = [p for p, _, _ in heads]
    for layer in layers if density_budget is None else []:
        rec, den = recall[layer], density[layer]
        heads = []
        for h in range(rec.shape[1]):
            ok = [(float(den[c, h]), c) for c in range(len(candidates)) if rec[c, h] >= target_recall]
            if ok:
                d, c = min(ok)
                heads.append((candidates[c], float(rec[c, h]), d))
            else:
                heads.append((dense, 1.0, 1.0))
        result.choices[layer] = heads
        result.config.layers[layer] = [p for p, _, _ in heads]
    for c, pattern in enumerate(candidates):
        r = torch.stack([recall[l][c] for l in layers])
        d = torch.stack([density[l][c] for l in layers])
        result.candidate_recall[pattern] = (float(r.mean()), float(d.mean()))
    return result


def score_candidates(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    candidates: Sequence[HeadPattern],
    *,
    rows: int = 64,
    block: int = 64,
    backend: str | None = None,
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Recall and density of every candidate on every head, from one dense forward pass
    over `input_ids` [1, N]: two dicts layer -> [candidates, heads] (CPU float32)."""
    # Estimates run where the model runs: Triton kernels on CUDA, the torch reference on
    # CPU (never the Triton interpreter, which is for tests of the kernels themselves).
    backend = backend or ("auto" if next(model.parameters()).is_cuda else "torch")
    collector = _Collector(candidates, block, rows, backend)
    record_prefill(model, input_ids, collector)
    return collector.recall, collector.density


def record_prefill(model: torch.nn.Module, input_ids: torch.Tensor, recorder: Any) -> None:
    """One dense forward pass of `model` over `input_ids` [1, N] that calls
    `recorder(layer, q, k)` with every layer's true q and k; the model's attention is
    restored afterwards."""
    from ctxagent.kernels.hf_integration import SparsePrefill, disable_sparse_prefill, enable_sparse_prefill

    previous = model.config._attn_implementation
    # Dense attention throughout (min_length out of reach): the recorder sees true q/k.
    enable_sparse_prefill(model, SparsePrefill(SparseConfig(min_length=1 << 62), "torch", recorder))
    try:
        with torch.inference_mode():
            model(input_ids=input_ids.to(model.device))
    finally:
        disable_sparse_prefill(model, previous if previous != "ctxagent_sparse" else "sdpa")


def allocate_density(recall: torch.Tensor, density: torch.Tensor, budget: float) -> torch.Tensor:
    """Per-head choices [L, H] (indices into dim 1) of recall/density [L, C, H] that
    maximise mean recall with mean density <= budget (approximately: the greedy over
    each head's upper convex hull of (density, recall), the steepest upgrades first,
    exact up to the last upgrade that no longer fits).

    Starts every head at its cheapest option; if even that exceeds the budget, stays there."""
    L, C, H = recall.shape
    start = density.argmin(1)  # [L, H]
    pick = start.clone()
    segments: list[tuple[float, float, int, int, int]] = []  # (slope, extra density, layer, head, option)
    for l in range(L):
        for h in range(H):
            pts = sorted((float(density[l, c, h]), float(recall[l, c, h]), c) for c in range(C))
            d0, r0, _ = min(pts, key=lambda p: (p[0], -p[1]))
            hull: list[tuple[float, float, int]] = [(d0, r0, int(start[l, h]))]
            for d, r, c in pts:
                if d <= hull[-1][0] or r <= hull[-1][1]:
                    continue
                while len(hull) >= 2 and (hull[-1][1] - hull[-2][1]) * (d - hull[-1][0]) <= (r - hull[-1][1]) * (hull[-1][0] - hull[-2][0]):
                    hull.pop()  # the last point lies under the chord: never worth stopping at
                hull.append((d, r, c))
            for (da, ra, _), (db, rb, cb) in zip(hull, hull[1:]):
                segments.append(((rb - ra) / (db - da), db - da, l, h, cb))
    total = float(density.gather(1, start.unsqueeze(1)).sum())
    limit = budget * L * H
    blocked: set[tuple[int, int]] = set()
    for _, extra, l, h, c in sorted(segments, key=lambda s: -s[0]):
        if (l, h) in blocked:
            continue
        if total + extra > limit + 1e-6 * L * H:  # float32 densities
            blocked.add((l, h))  # its later upgrades are flatter; keep the order per head
            continue
        total += extra
        pick[l, h] = c
    return pick


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Per-head sparse-pattern search by attention recall.")
    ap.add_argument("text", type=Path, help="calibration text file")
    ap.add_argument("-o", "--out", type=Path, required=True, help="where to write the JSON config")
    ap.add_argument("--model", default=None, help="local path or hub id (default: the embedded SmolLM2)")
    ap.add_argument("--tokens", type=int, default=4096, help="calibration length in tokens")
    ap.add_argument("--target", type=float, default=0.95, help="recall each head must reach")
    ap.add_argument("--budget", type=float, default=None, help="instead of --target: the best mean recall within this mean density (e.g. 0.15)")
    ap.add_argument("--min-length", type=int, default=8192, help="prompts shorter than this stay dense")
    ap.add_argument("--fast", action="store_true", help="search only candidates with the default's cheap index (fast_candidates)")
    ap.add_argument("--dense-tail", type=int, default=DEFAULT_DENSE_TAIL, help="the last N query rows of every sparse prefill attend densely (0: none)")
    args = ap.parse_args(argv)
    from ctxagent.engines import get_engine

    engine: Any = get_engine("hf", model=args.model)
    ids = engine.tokenizer(args.text.read_text(), return_tensors="pt")["input_ids"][:, : args.tokens]
    if ids.shape[1] < 256:
        raise SystemExit(f"{args.text} has {ids.shape[1]} tokens; calibrate on at least 256 (ideally the prompt length you serve)")
    result = search_config(
        engine.model, ids, target_recall=args.target, density_budget=args.budget, candidates=(fast_candidates if args.fast else length_candidates)(ids.shape[1]),
        min_length=args.min_length
    )
    result.config.dense_tail = args.dense_tail
    result.config.save(args.out)
    print(f"{ids.shape[1]} tokens: {result.summary()}; wrote {args.out}")


if __name__ == "__main__":
    main()
