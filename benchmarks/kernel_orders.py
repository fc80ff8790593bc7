"""The sparse attention kernel under each program order (`triton_kernels.ORDERS`) side by
side in one run, on the same index: kernel time alone and whether the outputs are equal;
and where the vertical-slash index's time goes, kernel by kernel (torch profiler).

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/kernel_orders.py \
        [--lengths 32768 131072] [--shapes qwen0.5b llama8b] [--quick]

Why the order can pay: at 128K a KV head's K and V (32 MB each at head dim 128) do not fit
in the H100's 50 MB L2, and the kernel reads a 64-key tile of each for every listed block
of every query block. Programs running side by side share the tiles they both read:
- `blocks` (the default so far): the query blocks of one head, heaviest first. Neighbouring
  query blocks share the tiles of nearby block diagonals and every column tile.
- `heads`: every head's same query block side by side. The query heads of one KV head share
  the tiles of the diagonals they have in common (the local ones at least).
- `groups`: the query heads of one KV head, then query blocks, then KV heads; both kinds of
  sharing, within one KV head's working set.
Patterns: the default vertical-slash (1024 columns, 32 block diagonals) and A-shape with 4096
local tokens. Shapes as in vs_estimate.py; bf16, batch 1, structured q/k, block 64, medians of
do_bench in ms. `--stages`: order `blocks` also with other pipeline depths (3 is the launch
default at block 64); `--fold`: order `blocks` with the softmax scale folded into the
exponent (`fold_scale`; its relative difference from the default output in the JSON).
Writes <out>/<name>.{md,json,png}. `--quick` (CPU, Triton's interpreter) checks
the script only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(_HERE)]
import provenance  # noqa: E402
from mixed_patterns import timer  # noqa: E402
from vs_estimate import SHAPES  # noqa: E402

from ctxagent.kernels.index import a_shape_index, vertical_slash_index  # noqa: E402
from ctxagent.kernels.synthetic import structured_qkv  # noqa: E402
from ctxagent.kernels.triton_kernels import ORDERS, launch_sparse_attention  # noqa: E402

PATTERNS = {
    "vertical_slash 1024/32": lambda q, k: vertical_slash_index(q, k, n_vertical=1024, n_diag=32),
    "a_shape 64+4096": lambda q, k: a_shape_index(1, q.shape[1], k.shape[2], sink=64, local=4096, device=q.device),
}


def index_profile(q: torch.Tensor, k: torch.Tensor, top: int = 12) -> list[dict]:
    """The default vertical-slash index's GPU kernels, summed by name over 5 builds (ms per build)."""
    from torch.profiler import ProfilerActivity, profile

    build = PATTERNS["vertical_slash 1024/32"]
    build(q, k)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            build(q, k)
        torch.cuda.synchronize()
    events = sorted(prof.key_averages(), key=lambda e: e.device_time_total, reverse=True)
    rows = [{"kernel": e.key[:90], "ms": e.device_time_total / 5e3, "calls": e.count // 5} for e in events if e.device_time_total > 0]
    return rows[:top] + (
        [{"kernel": f"({len(rows) - top} others)", "ms": sum(r["ms"] for r in rows[top:]), "calls": sum(r["calls"] for r in rows[top:])}]
        if len(rows) > top
        else []
    )


def measure(shape: str, n: int, stages: list[int], fold: bool, time_ms, device: str, dtype: torch.dtype) -> tuple[list[dict], list[dict]]:
    heads, kv_heads, dim = SHAPES[shape]
    q, k, v = structured_qkv(1, heads, kv_heads, n, dim, seed=0, device=device, dtype=dtype)
    rows = []
    for name, build in PATTERNS.items():
        index = build(q, k)
        outs = {order: torch.empty_like(q) for order in ORDERS}
        row: dict = {"shape": shape, "tokens": n, "pattern": name, "density": index.density(n)}
        for order in ORDERS:
            row[f"{order}_ms"] = time_ms(lambda: launch_sparse_attention(q, k, v, outs[order], index, dim**-0.5, order=order))
        for st in stages:
            row[f"stages{st}_ms"] = time_ms(lambda: launch_sparse_attention(q, k, v, outs["blocks"], index, dim**-0.5, num_stages=st))
        if fold:
            folded = torch.empty_like(q)
            row["fold_ms"] = time_ms(lambda: launch_sparse_attention(q, k, v, folded, index, dim**-0.5, fold_scale=True))
            row["fold_err"] = float((folded.float() - outs["blocks"].float()).norm() / outs["blocks"].float().norm())
        row["index_ms"] = time_ms(lambda: build(q, k))
        row["equal"] = all(torch.equal(outs["blocks"], out) for out in outs.values())
        rows.append(row)
        print(json.dumps(row), flush=True)
    profile = [{"shape": shape, "tokens": n, **r} for r in index_profile(q, k)] if device == "cuda" else []
    for r in profile:
        print(json.dumps(r), flush=True)
    return rows, profile


def plot(rows: list[dict], gpu: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['shape']}\n{r['pattern']}\n{r['tokens'] // 1024}K" for r in rows]
    width = 0.8 / (len(ORDERS) - 1)
    for i, order in enumerate(o for o in ORDERS if o != "blocks"):
        ax.bar([j + i * width for j in range(len(rows))], [r["blocks_ms"] / r[f"{order}_ms"] for r in rows], width, label=order)
    ax.set_xticks([j + width / 2 for j in range(len(rows))], labels, fontsize=6)
    ax.axhline(1, color="grey", lw=0.5)
    ax.set_ylabel("speed-up over order 'blocks'")
    ax.legend()
    ax.set_title(f"sparse attention kernel by program order - {gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[32768, 131072])
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES, reverse=True))
    ap.add_argument(
        "--stages", type=int, nargs="*", default=[], help="also time order 'blocks' with this many pipeline stages (the default is 3), one column each"
    )
    ap.add_argument("--fold", action="store_true", help="also time order 'blocks' with the softmax scale folded into the exponent (fold_scale), and its relative difference")
    ap.add_argument("--reps-ms", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="2048 tokens on whatever device there is (a smoke test)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.lengths = [2048]
    prov = provenance.stamp(args.allow_dirty)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    time_ms = timer(device, args.reps_ms)
    rows, profile = [], []
    for shape in args.shapes:
        for n in args.lengths:
            r, p = measure(shape, n, args.stages, args.fold, time_ms, device, dtype)
            rows, profile = rows + r, profile + p
            if device == "cuda":
                torch.cuda.empty_cache()
    prov = provenance.finish(dict(prov))
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU (Triton interpreter)"
    name = args.name or ("kernel_orders" + ("_quick" if args.quick else ""))
    extra = [f"stages{st}" for st in args.stages] + (["fold"] if args.fold else [])
    order_cols = " | ".join([f"{o} ms" for o in ORDERS] + [f"blocks, {st} stages ms" for st in args.stages] + (["blocks, scale folded ms"] if args.fold else []))
    lines = [
        f"# Sparse attention kernel by program order: {gpu}",
        "",
        f"The kernel alone (index built beforehand), {dtype}, batch 1, structured q/k, block 64. Medians in ms; `index ms`: "
        "building the index. `equal`: the outputs of every order are equal bit for bit.",
        "",
        f"| shape | tokens | pattern | density | index ms | {order_cols} | best x | equal |",
        "|---|---:|---|---:|---:|" + "---:|" * (len(ORDERS) + len(extra)) + "---:|---|",
    ]
    for r in rows:
        times = " | ".join(f"{r[f'{c}_ms']:.2f}" for c in [*ORDERS, *extra])
        best = r["blocks_ms"] / min(r[f"{c}_ms"] for c in [*ORDERS, *extra])
        lines.append(f"| {r['shape']} | {r['tokens']} | {r['pattern']} | {r['density']:.3f} | {r['index_ms']:.2f} | {times} | {best:.2f} | {r['equal']} |")
    if profile:
        lines += ["", "The default vertical-slash index, its GPU kernels (torch profiler, ms per build, summed by kernel name):", ""]
        lines += ["| shape | tokens | kernel | calls | ms |", "|---|---:|---|---:|---:|"]
        lines += [f"| {p['shape']} | {p['tokens']} | `{p['kernel']}` | {p['calls']} | {p['ms']:.3f} |" for p in profile]
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "rows": rows, "index_profile": profile}, indent=1))
    plot(rows, gpu, args.out / f"{name}.png")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
