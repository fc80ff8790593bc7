"""Mixed per-head patterns in one layer: does a layer whose heads use many different
patterns run as cheaply as its heads would alone? (issue 26's micro-benchmark)

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/mixed_patterns.py \
        [--tokens 131072] [--distinct 1 2 4 7 14] [--candidates all|fast] [--quick]

One attention layer of Qwen2.5-Coder-0.5B's shape (14 query / 2 KV heads of 64), bf16,
batch 1, causal, random q/k/v (`--structured` for `synthetic.structured_qkv`). For k
distinct patterns, head h takes candidate (h mod k) of k candidates spread evenly over
`search.length_candidates(tokens)` (the per-head search's own list; `--candidates fast`:
`search.fast_candidates`, whose heads differ only in budget), so the rows differ in
density as well as in mixing; the density column says how much each computes. A last
row, `default`, is the default config (vertical-slash 1024/32 on every head).

Columns (medians of `triton.testing.do_bench`, ms):
- `index`: `layer_index` (each pattern built for its own heads, vertical-slash budgets
  sharing one estimate, one merged index);
- `index, per budget`: the same with `share_estimates=False` (each vertical-slash budget
  runs its own estimate, as before the estimates were shared);
- `index, all heads`: the former way, every pattern built over all heads then merged
  (what issue 26 measured: 164 ms for 14 patterns at 128K on an H100);
- `attention`: the kernel over the merged index, one launch;
- `per-group sum`: each pattern's heads launched alone over their own index, summed:
  what the merged launch must not exceed by much;
- `total`: `sparse_prefill_attention` (index + kernel + SDPA for dense heads), dense tail off;
- `dense`: SDPA (cuDNN / flash, whichever torch picks, GQA without repeating K/V).
Writes <out>/<name>.{md,json}. `--quick` runs a small size on CPU too (torch reference:
slow, checks the script only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# benchmarks/ goes last on the path: its kernels.py must not shadow the `kernels` package
# that transformers imports when it is installed (python puts the script's folder first)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(_HERE)]
import provenance  # noqa: E402

from ctxagent.kernels.attention import dense_attention, head_groups, heads_subset, layer_index, merge_heads, pattern_index, sparse_prefill_attention  # noqa: E402
from ctxagent.kernels.config import SparseConfig  # noqa: E402
from ctxagent.kernels.search import fast_candidates, length_candidates  # noqa: E402
from ctxagent.kernels.sparse_attn import sparse_attention  # noqa: E402
from ctxagent.kernels.synthetic import random_qkv, structured_qkv  # noqa: E402


def timer(device: str, reps_ms: int):
    if device == "cuda":
        import triton

        return lambda fn: float(triton.testing.do_bench(fn, warmup=25, rep=reps_ms, return_mode="median"))

    def cpu(fn) -> float:
        fn()
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1e3

    return cpu


CANDIDATES = {"all": length_candidates, "fast": fast_candidates}


def mixed_config(tokens: int, heads: int, distinct: int, block: int, candidates: str = "all") -> SparseConfig:
    cands = CANDIDATES[candidates](tokens, block)
    picks = [cands[round(i * (len(cands) - 1) / max(1, distinct - 1))] for i in range(distinct)]
    return SparseConfig(layers={0: [picks[h % distinct] for h in range(heads)]}, block=block, min_length=0, dense_tail=0)


def index_all_heads(q, k, config: SparseConfig, backend: str):
    """The former layer_index: every distinct pattern over all heads, then merged."""
    H = q.shape[1]
    parts = []
    for pattern, hs in head_groups(config, 0, H).items():
        full = pattern_index(q, k, pattern, config.block, backend=backend, dense_as_empty=True)
        sel = torch.tensor(hs, device=q.device)
        sub = type(full)(full.block, full.block_idx[:, sel], full.block_cnt[:, sel],
                         None if full.cols is None else full.cols[:, sel], None if full.col_cnt is None else full.col_cnt[:, sel],
                         None if full.is_diag is None else full.is_diag[:, sel], full.q_start)
        parts.append((hs, sub))
    return merge_heads(parts, H)


def run(args, distinct: int | str, q, k, v, time_ms) -> dict:
    backend = "auto"
    if distinct == "default":
        config = SparseConfig(block=args.block, min_length=0, dense_tail=0)
        config.layers = {0: [config.default] * q.shape[1]}
    else:
        config = mixed_config(args.tokens, q.shape[1], distinct, args.block, args.candidates)
    index = layer_index(q, k, config, 0, backend=backend, dense_as_empty=True)
    row: dict = {"distinct": distinct, "patterns": sorted({str(p.to_dict()) for p in config.layers[0]}), "density": index.density(args.tokens)}
    row["index_ms"] = time_ms(lambda: layer_index(q, k, config, 0, backend=backend, dense_as_empty=True))
    row["index_per_budget_ms"] = time_ms(lambda: layer_index(q, k, config, 0, backend=backend, dense_as_empty=True, share_estimates=False))
    if not args.skip_old:
        row["index_all_heads_ms"] = time_ms(lambda: index_all_heads(q, k, config, backend))
    row["attention_ms"] = time_ms(lambda: sparse_attention(q, k, v, index, backend=backend))
    group_ms = 0.0
    for pattern, hs in head_groups(config, 0, q.shape[1]).items():
        qs, ks = heads_subset(q, k, hs)
        vs = heads_subset(q, v, hs)[1]
        sub = pattern_index(qs, ks, pattern, args.block, backend=backend)
        group_ms += time_ms(lambda: sparse_attention(qs, ks, vs, sub, backend=backend))
    row["per_group_sum_ms"] = group_ms
    row["total_ms"] = time_ms(lambda: sparse_prefill_attention(q, k, v, config, 0, backend=backend))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=131072)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--distinct", type=int, nargs="+", default=[1, 2, 4, 7, 14])
    ap.add_argument("--candidates", choices=sorted(CANDIDATES), default="all", help="the list the distinct patterns come from")
    ap.add_argument("--structured", action="store_true", help="structured q/k/v (synthetic.structured_qkv) instead of random")
    ap.add_argument("--skip-old", action="store_true", help="do not time the former all-heads index")
    ap.add_argument("--reps-ms", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="2048 tokens, distinct 1 2 4 (a smoke test; runs on CPU)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.tokens, args.distinct = 2048, [1, 2, 4]
    prov = provenance.stamp(args.allow_dirty)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    make = structured_qkv if args.structured else random_qkv
    q, k, v = make(1, args.heads, args.kv_heads, args.tokens, args.dim, seed=0, device=device, dtype=dtype)
    time_ms = timer(device, args.reps_ms)
    dense_ms = time_ms(lambda: dense_attention(q, k, v))
    rows = []
    for d in [*args.distinct, "default"]:
        row = run(args, d, q, k, v, time_ms)
        row["dense_ms"] = dense_ms
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "patterns"}), flush=True)
    prov = provenance.finish(dict(prov))
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU (torch reference)"
    name = args.name or ("mixed_patterns" + ("_quick" if args.quick else ""))
    lines = [
        f"# Mixed per-head patterns in one layer: {args.tokens} tokens, {args.heads}/{args.kv_heads} heads of {args.dim}, {gpu}",
        "",
        f"{'Structured' if args.structured else 'Random'} q/k/v, {dtype}, block {args.block}. Head h takes candidate h mod k of k spread over "
        f"`{CANDIDATES[args.candidates].__name__}`; `default` is the default config. Times in ms (medians); `index, per budget` builds each "
        "vertical-slash budget with its own estimate; `index, all heads` is the first layer_index (every pattern over every head); "
        "`per-group sum` launches each pattern's heads alone. Dense tail off.",
        "",
        "| distinct patterns | density | index | index, per budget | index, all heads | attention (1 launch) | per-group sum | total | dense | x dense |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        old = f"{r['index_all_heads_ms']:.2f}" if "index_all_heads_ms" in r else "-"
        lines.append(
            f"| {r['distinct']} | {r['density']:.3f} | {r['index_ms']:.2f} | {r['index_per_budget_ms']:.2f} | {old} | {r['attention_ms']:.2f} | {r['per_group_sum_ms']:.2f} | "
            f"{r['total_ms']:.2f} | {r['dense_ms']:.2f} | {r['dense_ms'] / r['total_ms']:.2f} |"
        )
    lines += ["", "Patterns per row: " + "; ".join(f"{r['distinct']}: {', '.join(r['patterns'])}" for r in rows), "", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "tokens": args.tokens, "candidates": args.candidates, "rows": rows}, indent=1))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
