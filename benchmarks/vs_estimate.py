"""The vertical-slash estimate fused in Triton against the torch estimate it replaces on the
GPU, side by side in one run: the estimate alone and the default index (1024 columns, 32
block diagonals, last 64 queries) built with each, and how far their picks agree.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/vs_estimate.py \
        [--lengths 32768 131072 1048576] [--shapes qwen0.5b llama8b] [--tiles 2 4 8] [--quick]

Shapes: one attention layer of Qwen2.5-0.5B (14 query / 2 KV heads of 64) and of an
8B Llama (32 / 8 of 128); bf16, batch 1, structured q/k (`synthetic.structured_qkv`:
random q/k make every column alike and the agreement column meaningless). Times are
medians of `triton.testing.do_bench` in ms. Agreement: the share of each head's picked
columns that the torch estimate also picks, and of its block diagonals. The torch
estimate computes bf16 logits, the fused one float32, so near-ties may fall either way.
`--tiles`: the fused estimate is also timed with that many key tiles per program of its
second launch (`last_rows_mass(tiles_per_program=)`, the same sums bit for bit), one
column each; `estimate fused` and the index columns are the library's defaults.
Writes <out>/<name>.{md,json,png} (and <name>_profile.txt with `--profile`). `--quick` (CPU, Triton's interpreter) checks the script only.
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
from plotting import pyplot  # noqa: E402
from mixed_patterns import timer  # noqa: E402

from ctxagent.kernels.index import vertical_slash_index, vertical_slash_mass  # noqa: E402
from ctxagent.kernels.synthetic import structured_qkv  # noqa: E402
from ctxagent.kernels.vs_estimate import last_rows_mass  # noqa: E402

SHAPES = {"qwen0.5b": (14, 2, 64), "llama8b": (32, 8, 128)}


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean share of a's entries per head (sorted, padded with sentinels) found in b."""
    return float((a[..., :, None] == b[..., None, :]).any(-1).float().mean())


def measure(shape: str, n: int, tiles: list[int], time_ms, device: str, dtype: torch.dtype) -> dict:
    heads, kv_heads, dim = SHAPES[shape]
    q, k, _ = structured_qkv(1, heads, kv_heads, n, dim, seed=0, device=device, dtype=dtype)
    row: dict = {"shape": shape, "tokens": n}
    for backend in ("torch", "triton"):
        row[f"estimate_{backend}_ms"] = time_ms(lambda: vertical_slash_mass(q, k, backend=backend))
        row[f"index_{backend}_ms"] = time_ms(lambda: vertical_slash_index(q, k, backend=backend))
    fused = vertical_slash_index(q, k, backend="triton")
    plain = vertical_slash_index(q, k, backend="torch")
    row["same_columns"] = agreement(fused.cols, plain.cols)
    row["same_diagonals"] = float((fused.is_diag == plain.is_diag).float().mean())
    scale = dim**-0.5
    row["fused_tiles_ms"] = {t: time_ms(lambda: last_rows_mass(q, k, 64, scale, 64, t)) for t in tiles}
    row["estimate_x"] = row["estimate_torch_ms"] / row["estimate_triton_ms"]
    row["index_x"] = row["index_torch_ms"] / row["index_triton_ms"]
    return row


def plot(rows: list[dict], gpu: str, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for shape in sorted({r["shape"] for r in rows}):
        mine = [r for r in rows if r["shape"] == shape]
        ax.plot([r["tokens"] for r in mine], [r["index_x"] for r in mine], "-o", label=f"{shape}: index")
        ax.plot([r["tokens"] for r in mine], [r["estimate_x"] for r in mine], "--o", label=f"{shape}: estimate")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens")
    ax.set_ylabel("speed-up of the fused estimate over torch")
    ax.axhline(1, color="grey", lw=0.5)
    ax.legend()
    ax.set_title(f"vertical-slash 1024/32, last 64 queries - {gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def shape_parser(description: str, lengths: list[int]) -> argparse.ArgumentParser:
    """The options of the one-layer benchmarks over SHAPES (this one, kernel_parts.py)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--lengths", type=int, nargs="+", default=lengths)
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES, reverse=True))
    ap.add_argument("--reps-ms", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="2048 tokens on whatever device there is (a smoke test)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--allow-dirty", action="store_true")
    return ap


def over_shapes(args: argparse.Namespace, measure) -> tuple[list[dict], dict, str, torch.dtype]:
    """measure(shape, n, time_ms, device, dtype) -> rows, for each shape and length of `args`
    (bf16 on a GPU, float32 under the CPU interpreter), each row printed as it comes; returns
    the rows, the run's provenance, the device's name and the dtype."""
    if args.quick:
        args.lengths = [2048]
    prov = provenance.stamp(args.allow_dirty)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    time_ms = timer(device, args.reps_ms)
    rows = []
    for shape in args.shapes:
        for n in args.lengths:
            for row in measure(shape, n, time_ms, device, dtype):
                rows.append(row)
                print(json.dumps(row), flush=True)
            if device == "cuda":
                torch.cuda.empty_cache()
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU (Triton interpreter)"
    return rows, provenance.finish(dict(prov)), gpu, dtype


def main() -> None:
    ap = shape_parser(__doc__.splitlines()[0], [32768, 131072, 1048576])
    ap.add_argument("--tiles", type=int, nargs="*", default=[], help="also time the fused estimate with this many key tiles per program of its second launch, one column each")
    ap.add_argument("--profile", action="store_true", help="also write where the fused index's GPU time goes (torch profiler) at the largest length, per shape")
    args = ap.parse_args()
    rows, prov, gpu, dtype = over_shapes(args, lambda shape, n, time_ms, device, dtype: [measure(shape, n, args.tiles, time_ms, device, dtype)])
    name = args.name or ("vs_estimate" + ("_quick" if args.quick else ""))
    lines = [
        f"# The vertical-slash estimate, fused (Triton) against torch: {gpu}",
        "",
        f"One layer, {dtype}, batch 1, structured q/k; default index (1024 columns, 32 block diagonals, last 64 queries). "
        "Medians in ms. `same columns` / `same diagonals`: share of the fused index's picks that the torch estimate also picks.",
        "",
        "| shape | tokens | estimate torch | estimate fused | x | "
        + "".join(f"fused, {t} tiles a program | " for t in args.tiles)
        + "index torch | index fused | x | same columns | same diagonals |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(args.tiles) + "---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['tokens']} | {r['estimate_torch_ms']:.2f} | {r['estimate_triton_ms']:.2f} | {r['estimate_x']:.2f} | "
            + "".join(f"{r['fused_tiles_ms'][t]:.2f} | " for t in args.tiles)
            + f"{r['index_torch_ms']:.2f} | {r['index_triton_ms']:.2f} | {r['index_x']:.2f} | {r['same_columns']:.3f} | {r['same_diagonals']:.3f} |"
        )
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "rows": rows}, indent=1))
    plot(rows, gpu, args.out / f"{name}.png")
    if args.profile and torch.cuda.is_available():
        # to the file only: the tables are long, and printed they push a job's earlier output out of view
        tables = [profile_index(shape, max(args.lengths)) for shape in args.shapes]
        (args.out / f"{name}_profile.txt").write_text("\n\n".join([provenance.markdown_line(prov), *tables]) + "\n")
        lines += ["", f"Profile tables: {args.out / f'{name}_profile.txt'}"]
    print("\n".join(lines), flush=True)


def profile_index(shape: str, n: int, reps: int = 10) -> str:
    """The torch profiler's table of `reps` default fused index builds (GPU time per kernel)."""
    from torch.profiler import ProfilerActivity, profile

    heads, kv_heads, dim = SHAPES[shape]
    q, k, _ = structured_qkv(1, heads, kv_heads, n, dim, seed=0, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        vertical_slash_index(q, k, backend="triton")
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            vertical_slash_index(q, k, backend="triton")
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70)
    return f"{shape}, {n} tokens, {reps} index builds:\n{table}"


if __name__ == "__main__":
    main()
