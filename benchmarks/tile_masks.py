"""The sparse attention kernel with the causal mask on entry 0 of each block list only (the
library's kernel) against the same kernel masking every listed block (as it was), side by
side in one run, on the same index: kernel time alone, and whether the outputs are equal.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/tile_masks.py \
        [--lengths 32768 131072] [--shapes qwen0.5b llama8b] [--quick]

Why it can pay: a listed block before the diagonal needs no mask (every key precedes every
query row and lies inside the keys), and the index puts the diagonal block first
(SparseIndex), so only entry 0 needs one; the rest skip the masked loads and the
compare-and-select on every score. Patterns: the default vertical-slash (1024 columns, 32
block diagonals; its columns keep their masks, only block lists change), A-shape with 4096
and 16384 local tokens (the searched configs' heavy heads: almost all blocks). Shapes as in
vs_estimate.py; bf16, batch 1, structured q/k, block 64, medians of do_bench in ms.
Writes <out>/<name>.{md,json,png}. `--quick` (CPU, Triton's interpreter) checks the script only.
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
from ctxagent.kernels.triton_kernels import launch_sparse_attention  # noqa: E402

PATTERNS = {
    "vertical_slash 1024/32": lambda q, k: vertical_slash_index(q, k, n_vertical=1024, n_diag=32),
    "a_shape 64+4096": lambda q, k: a_shape_index(1, q.shape[1], k.shape[2], sink=64, local=4096, device=q.device),
    "a_shape 64+16384": lambda q, k: a_shape_index(1, q.shape[1], k.shape[2], sink=64, local=16384, device=q.device),
}


def measure(shape: str, n: int, time_ms, device: str, dtype: torch.dtype) -> list[dict]:
    heads, kv_heads, dim = SHAPES[shape]
    q, k, v = structured_qkv(1, heads, kv_heads, n, dim, seed=0, device=device, dtype=dtype)
    rows = []
    for name, build in PATTERNS.items():
        index = build(q, k)
        outs = {m: torch.empty_like(q) for m in (True, False)}
        row: dict = {"shape": shape, "tokens": n, "pattern": name, "density": index.density(n)}
        for every in (True, False):
            row["every_ms" if every else "entry0_ms"] = time_ms(lambda: launch_sparse_attention(q, k, v, outs[every], index, dim**-0.5, mask_every_tile=every))
        row["equal"] = bool(torch.equal(outs[True], outs[False]))
        row["x"] = row["every_ms"] / row["entry0_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def plot(rows: list[dict], gpu: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['shape']}\n{r['pattern']}\n{r['tokens'] // 1024}K" for r in rows]
    ax.bar(range(len(rows)), [r["x"] for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=6)
    ax.axhline(1, color="grey", lw=0.5)
    ax.set_ylabel("mask on entry 0 only: speed-up")
    ax.set_title(f"sparse attention kernel, causal mask on every tile vs entry 0 - {gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[32768, 131072])
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES, reverse=True))
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
    rows = []
    for shape in args.shapes:
        for n in args.lengths:
            rows += measure(shape, n, time_ms, device, dtype)
            if device == "cuda":
                torch.cuda.empty_cache()
    prov = provenance.finish(dict(prov))
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU (Triton interpreter)"
    name = args.name or ("tile_masks" + ("_quick" if args.quick else ""))
    lines = [
        f"# Causal mask on every listed block against entry 0 only: {gpu}",
        "",
        f"The sparse attention kernel alone (index built beforehand), {dtype}, batch 1, structured q/k, block 64. Medians in ms. "
        "`equal`: the two outputs are equal bit for bit.",
        "",
        "| shape | tokens | pattern | density | every tile | entry 0 only | x | equal |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['tokens']} | {r['pattern']} | {r['density']:.3f} | {r['every_ms']:.2f} | {r['entry0_ms']:.2f} | {r['x']:.2f} | {r['equal']} |"
        )
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "rows": rows}, indent=1))
    plot(rows, gpu, args.out / f"{name}.png")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
