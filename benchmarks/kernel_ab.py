"""This commit's attention kernel against `713bfd2`'s (a copy of its module beside
this script: ab_base_triton_kernels.py), side by side in one run on one GPU, each timing
alternated with its baseline three times.

    CTXAGENT_COMMIT=$(git rev-parse --short HEAD) PYTHONPATH=. python benchmarks/kernel_ab.py [--out DIR]

Rows, per shape at 128K (structured q/k/v, bf16, block 64):
- `default`: the default vertical-slash index (1024 columns, 32 block diagonals, last 64 queries);
- `mixed`: a layer whose heads cycle through vertical-slash 512/16, 1024/32 and 2048/64 and
  A-shape 64+2048 (`layer_index`), as a searched config mixes them;
- `no_cover (price only)`: this commit's kernel with the covered test edited out (wrong sums:
  covered columns counted twice), over the default index: what the test still costs.
Each kernel row times `launch_sparse_attention` over one prebuilt index; `max diff` compares
the outputs with the baseline's (0 means bit for bit). Times are the minimum over the three
alternations of do_bench medians, in ms.
Temporary: it lives in one commit, then goes with its baseline copy."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch
import triton

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(_HERE)]
import ab_base_triton_kernels as base_kernels  # noqa: E402
import provenance  # noqa: E402

import ctxagent.kernels.triton_kernels as kernels  # noqa: E402
from ctxagent.kernels.attention import layer_index  # noqa: E402
from ctxagent.kernels.config import HeadPattern, SparseConfig  # noqa: E402
from ctxagent.kernels.index import vertical_slash_index  # noqa: E402
from ctxagent.kernels.synthetic import structured_qkv  # noqa: E402

SHAPES = {"llama8b": (32, 8, 128), "qwen0.5b": (14, 2, 64)}
MIXED = [
    HeadPattern.make("vertical_slash", n_vertical=512, n_diag=16, last_q=64),
    HeadPattern.make("vertical_slash", n_vertical=1024, n_diag=32, last_q=64),
    HeadPattern.make("vertical_slash", n_vertical=2048, n_diag=64, last_q=64),
    HeadPattern.make("a_shape", sink=64, local=2048),
]


NO_COVER = ("use = listed & (covered == 0)", "use = listed")


def without_cover_test():
    """This commit's kernel module with the covered test edited out, imported from a temporary
    file (Triton reads a kernel's source from its file)."""
    old, new = NO_COVER
    source = Path(kernels.__file__).read_text()
    if source.count(old) != 1:
        raise SystemExit(f"{old!r} is not in the kernel once")
    path = Path(tempfile.mkdtemp()) / "ab_no_cover.py"
    path.write_text(source.replace(old, new))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def bench(fn) -> float:
    return float(triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"))


def alternate(fns: dict, rounds: int = 3) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(bench(fn))
    return {name: min(t) for name, t in times.items()}


def measure(shape: str, n: int) -> list[dict]:
    heads, kv, dim = SHAPES[shape]
    scale = dim**-0.5
    q, k, v = structured_qkv(1, heads, kv, n, dim, seed=n, device="cuda", dtype=torch.bfloat16)
    config = SparseConfig(layers={0: [MIXED[h % len(MIXED)] for h in range(heads)]}, block=64, min_length=1024, dense_tail=0)
    indexes = {"default": vertical_slash_index(q, k), "mixed": layer_index(q, k, config, 0)}
    rows = []
    for name, index in indexes.items():
        new = kernels.launch_sparse_attention(q, k, v, torch.empty_like(q), index, scale)
        old = base_kernels.launch_sparse_attention(q, k, v, torch.empty_like(q), index, scale)
        t = alternate({
            "new": lambda: kernels.launch_sparse_attention(q, k, v, new, index, scale),
            "base": lambda: base_kernels.launch_sparse_attention(q, k, v, old, index, scale),
        })
        diff = float((new.float() - old.float()).abs().max())
        rows.append({"shape": shape, "tokens": n, "index": name, "ms": t["new"], "base_ms": t["base"], "x": t["base"] / t["new"], "max_diff": diff})
        print(json.dumps(rows[-1]), flush=True)
    index = indexes["default"]
    free = without_cover_test()
    out = torch.empty_like(q)
    t = alternate({"new": lambda: free.launch_sparse_attention(q, k, v, out, index, scale), "base": lambda: kernels.launch_sparse_attention(q, k, v, out, index, scale)})
    rows.append({"shape": shape, "tokens": n, "index": "no_cover (price only), default; baseline = this commit", "ms": t["new"], "base_ms": t["base"], "x": t["base"] / t["new"], "max_diff": float("nan")})
    print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default=None)
    ap.add_argument("--tokens", type=int, default=131072)
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    prov = provenance.stamp(args.allow_dirty)
    gpu = torch.cuda.get_device_name()
    rows = [r for shape in SHAPES for r in measure(shape, args.tokens)]
    prov = provenance.finish(dict(prov))
    name = args.name or f"kernel_ab_cover_{gpu.replace(' ', '_')}"
    lines = [
        f"# This commit's attention kernel against 713bfd2's, side by side: {gpu}",
        "",
        f"{args.tokens} tokens, bf16, structured q/k/v, block 64. Minimum of three alternated do_bench medians, in ms; "
        "x = baseline / this commit; max diff between the outputs.",
        "",
        "| shape | index | ms | baseline ms | x | max diff |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['shape']} | {r['index']} | {r['ms']:.3f} | {r['base_ms']:.3f} | {r['x']:.3f} | {r['max_diff']:.3g} |" for r in rows]
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "rows": rows}, indent=1))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
