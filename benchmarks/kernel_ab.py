"""This commit's vertical-slash estimate and attention kernel against the previous ones
(copies of 72cf4a5's modules beside this script: ab_base_vs_estimate.py,
ab_base_triton_kernels.py), side by side in one run on one GPU, each timing alternated
with its baseline three times.

    CTXAGENT_COMMIT=$(git rev-parse --short HEAD) PYTHONPATH=. python benchmarks/kernel_ab.py [--out DIR]

Rows, per shape at 128K (structured q/k/v, bf16, the default index: 1024 columns, 32 block
diagonals, last 64 queries, block 64):
- `estimate`: `last_rows_mass` (the fused estimate, both launches and the torch around them);
- `index`: `vertical_slash_index` built with each estimate;
- `kernel`: the attention kernel alone over the same index, this commit's (queries and
  outputs through tensor descriptors on Hopper, the covered-column test off the K/V loads'
  path), then two variants of it, made by editing its source into a temporary module: the
  covered test back on the loads' path (`cover_early`: only the queries and outputs moved),
  and no covered test at all (`no_cover`: wrong sums, covered columns counted twice; it
  prices the test, nothing more);
- `index + kernel`: both, as `kernels.py` times the library's path.
Times are the minimum over the three alternations of do_bench medians, in ms; `max diff`
compares each output with the baseline's.
Temporary: it lives in one commit, then goes with its baseline copies."""

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
import ab_base_vs_estimate as base_estimate  # noqa: E402
import provenance  # noqa: E402
from plotting import pyplot  # noqa: E402

import ctxagent.kernels.vs_estimate as estimate  # noqa: E402
from ctxagent.kernels.index import vertical_slash_index  # noqa: E402
from ctxagent.kernels.synthetic import structured_qkv  # noqa: E402
import ctxagent.kernels.triton_kernels as kernels  # noqa: E402

SHAPES = {"llama8b": (32, 8, 128), "qwen0.5b": (14, 2, 64)}


VARIANTS = {  # name: (text in this commit's kernel, what it becomes)
    "cover_early": ("_attend_keys(q, k_base, v_base, cols, listed, use,", "_attend_keys(q, k_base, v_base, cols, use, use,"),
    "no_cover (price only)": ("use = listed & (covered == 0)", "use = listed"),
}


def variant(name: str):
    """This commit's kernel module with one edit (VARIANTS[name]), imported from a temporary file
    (Triton reads a kernel's source from its file)."""
    old, new = VARIANTS[name]
    source = Path(kernels.__file__).read_text()
    if source.count(old) != 1:
        raise SystemExit(f"variant {name!r}: {old!r} is not in the kernel once")
    path = Path(tempfile.mkdtemp()) / f"ab_variant_{len(sys.modules)}.py"
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


def with_estimate(fn, which):
    """fn() with the library's vertical-slash path calling `which`'s last_rows_mass."""
    keep = estimate.last_rows_mass
    estimate.last_rows_mass = which.last_rows_mass
    try:
        return fn()
    finally:
        estimate.last_rows_mass = keep


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def measure(shape: str, n: int) -> list[dict]:
    heads, kv, dim = SHAPES[shape]
    scale = dim**-0.5
    q, k, v = structured_qkv(1, heads, kv, n, dim, seed=n, device="cuda", dtype=torch.bfloat16)
    rows = []

    def row(part: str, variant: str, ms: float, base_ms: float, diff: float) -> None:
        rows.append({"shape": shape, "tokens": n, "part": part, "variant": variant, "ms": ms, "base_ms": base_ms, "x": base_ms / ms, "max_diff": diff})
        print(json.dumps(rows[-1]), flush=True)

    new_mass, old_mass = estimate.last_rows_mass(q, k, 64, scale, 64), base_estimate.last_rows_mass(q, k, 64, scale, 64)
    t = alternate({"new": lambda: estimate.last_rows_mass(q, k, 64, scale, 64), "base": lambda: base_estimate.last_rows_mass(q, k, 64, scale, 64)})
    row("estimate", "this commit", t["new"], t["base"], max(max_diff(a, b) for a, b in zip(new_mass, old_mass)))
    index = vertical_slash_index(q, k)
    old_index = with_estimate(lambda: vertical_slash_index(q, k), base_estimate)
    same = bool(torch.equal(index.cols, old_index.cols) and torch.equal(index.is_diag, old_index.is_diag))
    t = alternate({"new": lambda: vertical_slash_index(q, k), "base": lambda: with_estimate(lambda: vertical_slash_index(q, k), base_estimate)})
    row("index", "this commit" + ("" if same else " (picks differ)"), t["new"], t["base"], 0.0 if same else 1.0)

    ref = base_kernels.launch_sparse_attention(q, k, v, torch.empty_like(q), index, scale)
    modules = {"this commit": kernels} | {name: variant(name) for name in VARIANTS}
    for name, module in modules.items():
        out = module.launch_sparse_attention(q, k, v, torch.empty_like(q), index, scale)
        t = alternate({"new": lambda: module.launch_sparse_attention(q, k, v, out, index, scale), "base": lambda: base_kernels.launch_sparse_attention(q, k, v, out, index, scale)})
        row("kernel", name, t["new"], t["base"], max_diff(out, ref))

    def whole(module, which):
        idx = with_estimate(lambda: vertical_slash_index(q, k), which)
        return module.launch_sparse_attention(q, k, v, torch.empty_like(q), idx, scale)

    t = alternate({"new": lambda: whole(kernels, estimate), "base": lambda: whole(base_kernels, base_estimate)})
    row("index + kernel", "this commit", t["new"], t["base"], max_diff(whole(kernels, estimate), ref))
    return rows


def plot(rows: list[dict], gpu: str, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(rows)), [r["x"] for r in rows])
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(rows)), [f"{r['shape']}\n{r['part']}\n{r['variant']}" for r in rows], fontsize=5)
    ax.set_ylabel("baseline ms / this commit's ms")
    ax.set_title(f"estimate and kernel against 72cf4a5 at 128K - {gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default=None)
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    prov = provenance.stamp(args.allow_dirty)
    gpu = torch.cuda.get_device_name()
    rows = [r for shape in SHAPES for r in measure(shape, 131072)]
    prov = provenance.finish(dict(prov))
    name = args.name or f"kernel_ab_{gpu.replace(' ', '_')}"
    lines = [
        f"# This commit's estimate and kernel against 72cf4a5's, side by side: {gpu}",
        "",
        "128K tokens, bf16, structured q/k/v, the default vertical-slash index (1024/32, block 64). "
        "Minimum of three alternated do_bench medians, in ms; x = baseline / this commit.",
        "",
        "| shape | part | variant | ms | baseline ms | x | max diff |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['shape']} | {r['part']} | {r['variant']} | {r['ms']:.3f} | {r['base_ms']:.3f} | {r['x']:.3f} | {r['max_diff']:.3g} |" for r in rows]
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "rows": rows}, indent=1))
    plot(rows, gpu, args.out / f"{name}.png")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
