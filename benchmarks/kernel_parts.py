"""Where the sparse attention kernel's time goes on the default vertical-slash index: the
kernel alone over the whole index and over parts of it, side by side in one run.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/kernel_parts.py \
        [--lengths 131072] [--shapes qwen0.5b llama8b] [--quick]

Parts of the same index (1024 columns, 32 block diagonals, last 64 queries; block 64):
- `whole`: as the library runs it;
- `blocks`: the block lists only (every listed block diagonal), no columns;
- `own block + columns`: each query block's own diagonal block (entry 0 of its list) and the
  columns;
- `own block`: entry 0 alone, what every program pays whatever its index.
Each part runs with each way of loading listed blocks' K/V: per-row pointers and `tma` (through
tensor descriptors; the default on Hopper). (`33637fc` also timed `tma+columns`, the columns
too from a contiguous per-head copy made at launch: slower, removed.) Each row also counts the key tiles the programs step through (a column tile is 64 listed
columns, covered ones included) and gives microseconds per thousand tiles, so block tiles
(contiguous keys) and column tiles (gathered keys) can be priced apart.
Shapes as in vs_estimate.py; bf16, batch 1, structured q/k, medians of do_bench in ms.
Writes <out>/<name>.{md,json,png}. `--quick` (CPU, Triton's interpreter) checks the script only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(_HERE)]
import provenance  # noqa: E402
from plotting import pyplot  # noqa: E402
from vs_estimate import SHAPES, over_shapes, shape_parser  # noqa: E402

from ctxagent.kernels.index import SparseIndex, vertical_slash_index  # noqa: E402
from ctxagent.kernels.synthetic import structured_qkv  # noqa: E402
from ctxagent.kernels.triton_kernels import launch_sparse_attention  # noqa: E402


def parts(index: SparseIndex) -> dict[str, SparseIndex]:
    """The whole index and the parts named in the module docstring."""
    own = index.block_cnt.clamp(max=1)
    return {
        "whole": index,
        "blocks": SparseIndex(index.block, index.block_idx, index.block_cnt, q_start=index.q_start),
        "own block + columns": SparseIndex(index.block, index.block_idx, own, index.cols, index.col_cnt, index.is_diag, index.q_start),
        "own block": SparseIndex(index.block, index.block_idx, own, q_start=index.q_start),
    }


def tiles(index: SparseIndex) -> tuple[int, int]:
    """Block tiles and column tiles that the kernel's programs step through."""
    column_tiles = 0 if index.col_cnt is None else int(((index.col_cnt + index.block - 1) // index.block).sum())
    return int(index.block_cnt.sum()), column_tiles


def measure(shape: str, n: int, time_ms, device: str, dtype: torch.dtype) -> list[dict]:
    heads, kv_heads, dim = SHAPES[shape]
    q, k, v = structured_qkv(1, heads, kv_heads, n, dim, seed=n, device=device, dtype=dtype)
    out = torch.empty_like(q)
    rows = []
    for name, index in parts(vertical_slash_index(q, k, n_vertical=1024, n_diag=32)).items():
        block_tiles, column_tiles = tiles(index)
        for loads in ("pointers", "tma"):
            ms = time_ms(lambda: launch_sparse_attention(q, k, v, out, index, dim**-0.5, tma=loads == "tma"))
            row = {"shape": shape, "tokens": n, "part": name, "loads": loads, "ms": ms, "block_tiles": block_tiles, "column_tiles": column_tiles}
            row["us_per_1k_tiles"] = ms * 1e6 / max(1, block_tiles + column_tiles)  # ms -> us (x1e3), per 1K tiles (x1e3)
            rows.append(row)
    return rows


def plot(rows: list[dict], gpu: str, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(rows)), [r["ms"] for r in rows])
    ax.set_xticks(range(len(rows)), [f"{r['shape']} {r['tokens'] // 1024}K\n{r['part']}\n{r['loads']}" for r in rows], fontsize=6)
    ax.set_ylabel("kernel ms")
    ax.set_title(f"sparse attention kernel over parts of the vertical-slash index - {gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    args = shape_parser(__doc__.splitlines()[0], [131072]).parse_args()
    rows, prov, gpu, dtype = over_shapes(args, measure)
    name = args.name or ("kernel_parts" + ("_quick" if args.quick else ""))
    lines = [
        f"# The sparse attention kernel over parts of the default vertical-slash index: {gpu}",
        "",
        f"The kernel alone (index built beforehand), {dtype}, batch 1, structured q/k, block 64, vertical-slash 1024/32. "
        "Medians in ms; tiles: key tiles the programs step through (column tiles: 64 listed columns, covered ones included).",
        "",
        "| shape | tokens | part | loads | ms | block tiles | column tiles | us per 1K tiles |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['tokens']} | {r['part']} | {r['loads']} | {r['ms']:.2f} | {r['block_tiles']} | {r['column_tiles']} | {r['us_per_1k_tiles']:.3f} |")
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "rows": rows}, indent=1))
    plot(rows, gpu, args.out / f"{name}.png")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
