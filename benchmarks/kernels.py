"""Sparse-prefill kernels against torch SDPA (cuDNN and flash backends), side by side.

    PYTHONPATH=. python benchmarks/kernels.py [--lengths 16384 32768 65536 131072]

For each length: causal prefill with 32 query heads, 8 KV heads, head dim 128, bf16,
batch 1. Every sparse time includes building its index on the GPU. Inputs are the
structured q/k/v of `ctxagent.kernels.synthetic` (sinks, heavy hitters, local window,
a slash line per head; its docstring says exactly how); recall and output error are also
reported on unstructured Gaussian inputs, where no sparse pattern can do well.

Baseline for block-sparse: PyTorch's FlexAttention (compiled) over a BlockMask made from
our block-sparse index (`flex_block_sparse`, index building included, as for ours), so
the same blocks are computed by both; the ratio says whether our kernel is worth keeping
for that pattern.

Recall: share of the true attention mass that falls on the computed keys, on 128 query
rows spread over the sequence, mean and min over heads. Output error: relative L2 error
against the cuDNN output. Writes a markdown table, JSON and a PNG plot to
benchmarks/results/ with the GPU's name, stamped with the commit (benchmarks/provenance.py;
on a copy without git, set CTXAGENT_COMMIT).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ctxagent.kernels.block_score import block_sparse_index
from ctxagent.kernels.index import a_shape_index, vertical_slash_index
from ctxagent.kernels.reference import attention_recall
from ctxagent.kernels.sparse_attn import sparse_attention
from ctxagent.kernels.synthetic import random_qkv, structured_qkv

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
from plotting import pyplot  # noqa: E402

PATTERNS = {
    "a_shape": lambda q, k: a_shape_index(q.shape[0], q.shape[1], q.shape[2], sink=64, local=2048, device=q.device),
    "vertical_slash": lambda q, k: vertical_slash_index(q, k, n_vertical=1024, n_diag=32, last_q=64),
    "block_sparse": lambda q, k: block_sparse_index(q, k, gamma=0.95, max_blocks=64),
    "block_sparse_pooled": lambda q, k: block_sparse_index(q, k, gamma=0.95, max_blocks=64, estimate="pooled"),
}

# Budget variants timed at the largest length with --sweep (recall vs time).
VARIANTS = {
    "vs 512/16": lambda q, k: vertical_slash_index(q, k, n_vertical=512, n_diag=16),
    "vs 2048/32": lambda q, k: vertical_slash_index(q, k, n_vertical=2048, n_diag=32),
    "vs 2048/64": lambda q, k: vertical_slash_index(q, k, n_vertical=2048, n_diag=64),
    "bs lse 0.9/64": lambda q, k: block_sparse_index(q, k, gamma=0.9, max_blocks=64),
    "bs lse 0.95/128": lambda q, k: block_sparse_index(q, k, gamma=0.95, max_blocks=128),
    "bs lse 0.98/256": lambda q, k: block_sparse_index(q, k, gamma=0.98, max_blocks=256),
    "a_shape 64+4096": lambda q, k: a_shape_index(q.shape[0], q.shape[1], q.shape[2], sink=64, local=4096, device=q.device),
    # blocks of 128 (query and key tiles 128 wide, 8 warps): fewer, larger matrix products per
    # score; 16 diagonals of 128 span the tokens 32 of 64 do, 32 of 128 twice that
    "vs 1024/16 b128": lambda q, k: vertical_slash_index(q, k, n_vertical=1024, n_diag=16, block=128),
    "vs 1024/32 b128": lambda q, k: vertical_slash_index(q, k, n_vertical=1024, n_diag=32, block=128),
}


def flex_block_mask(index, n: int):
    """A FlexAttention BlockMask computing exactly the blocks of a block-sparse index:
    blocks below the diagonal as full blocks, the diagonal block under a causal mask_mod."""
    from torch.nn.attention.flex_attention import BlockMask

    B, H, M, K = index.block_idx.shape
    m = torch.arange(M, device=index.block_idx.device)[:, None]
    listed = torch.arange(K, device=m.device) < index.block_cnt[..., None]
    below = listed & (index.block_idx < m)
    full_idx = torch.where(below, index.block_idx, torch.iinfo(torch.int32).max).sort(-1).values
    full_idx = torch.where(full_idx == torch.iinfo(torch.int32).max, 0, full_idx).to(torch.int32)
    # BlockMask wants index lists as wide as there are key blocks
    full_idx = torch.nn.functional.pad(full_idx, (0, max(0, M - K))).contiguous()
    full_cnt = below.sum(-1, dtype=torch.int32)
    diag_idx = torch.nn.functional.pad(m.to(torch.int32).expand(B, H, M, 1), (0, M - 1)).contiguous()
    diag_cnt = torch.ones(B, H, M, dtype=torch.int32, device=m.device)

    # The same pattern as a mask_mod too: FlexAttention's eager path (and any block it
    # treats as partial) applies only the mask_mod, not the block lists.
    table = torch.zeros(B, H, M, M + 1, dtype=torch.bool, device=m.device)
    table.scatter_(-1, torch.where(listed, index.block_idx, M).long(), True)
    table = table[..., :M].contiguous()
    block = index.block

    def causal(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & table[b, h, q_idx // block, kv_idx // block]

    return BlockMask.from_kv_blocks(diag_cnt, diag_idx, full_cnt, full_idx, BLOCK_SIZE=index.block, mask_mod=causal, seq_lengths=(n, n))


_flex = None


def flex_attention(q, k, v, block_mask):
    global _flex
    if _flex is None:
        from torch.nn.attention.flex_attention import flex_attention as fa

        _flex = torch.compile(fa, dynamic=False)
    # tiles of our block size (its defaults for d=128 are 128 rows, which a 64-block mask refuses)
    tile = {"BLOCK_M": block_mask.BLOCK_SIZE[0], "BLOCK_N": block_mask.BLOCK_SIZE[1]}
    return _flex(q, k, v, block_mask=block_mask, enable_gqa=True, kernel_options=tile)


def measure_flex(res, q, k, v, ref, n, reps) -> None:
    """FlexAttention over our block-sparse index (same blocks as `block_sparse`)."""
    build = PATTERNS["block_sparse"]
    idx = build(q, k)
    out = flex_attention(q, k, v, flex_block_mask(idx, n))
    torch.cuda.synchronize()
    t_total = bench(lambda: flex_attention(q, k, v, flex_block_mask(build(q, k), n)), reps)
    ours = res.get("block_sparse", {}).get("ms")
    res["flex_block_sparse"] = {
        "ms": t_total,
        "speedup_vs_cudnn": res["cudnn_ms"] / t_total,
        "speedup_vs_flash": res["flash_ms"] / t_total,
        "ours_vs_flex": (t_total / ours) if ours else None,
        "out_rel_err": rel_err(out, ref),
        "density": idx.density(n),
    }
    print(f"  {n:>6} flex_block_sparse {t_total:8.2f} ms  x{res['flex_block_sparse']['speedup_vs_cudnn']:5.2f} vs cuDNN  "
          f"ours x{res['flex_block_sparse']['ours_vs_flex'] or float('nan'):.2f} faster  err {res['flex_block_sparse']['out_rel_err']:.3f}", flush=True)


def bench(fn, reps_ms: int) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=50, rep=reps_ms, return_mode="median"))


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def run_length(n: int, args, rows_n: int = 128) -> dict:
    dev = "cuda"
    H, Hkv, D = args.heads, args.kv_heads, args.dim
    q, k, v = structured_qkv(1, H, Hkv, n, D, seed=n, device=dev, dtype=torch.bfloat16)
    G = H // Hkv
    ke, ve = k.repeat_interleave(G, 1), v.repeat_interleave(G, 1)  # dense baselines get K/V pre-expanded, untimed

    def sdpa(backend):
        def f():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, ke, ve, is_causal=True)  # noqa: F821 - called before run_length's `del`

        return f

    res: dict = {"n": n}
    ref = sdpa(SDPBackend.CUDNN_ATTENTION)()
    reps = max(200, int(args.reps_ms))
    res["cudnn_ms"] = bench(sdpa(SDPBackend.CUDNN_ATTENTION), reps)
    res["flash_ms"] = bench(sdpa(SDPBackend.FLASH_ATTENTION), reps)
    flash_out = sdpa(SDPBackend.FLASH_ATTENTION)()
    res["flash_vs_cudnn_err"] = rel_err(flash_out, ref)
    del flash_out
    gen = torch.Generator().manual_seed(n)
    rows = torch.cat([torch.randint(0, n, (rows_n - 1,), generator=gen), torch.tensor([n - 1])]).sort().values.to(dev)
    qr, kr, vr = random_qkv(1, H, Hkv, n, D, seed=n + 1, device=dev, dtype=torch.bfloat16)
    for name, build in PATTERNS.items():
        try:
            measure_pattern(res, name, build, q, k, v, qr, kr, vr, ref, rows, G, n, reps)
        except Exception as exc:  # keep the other patterns' numbers; say what broke
            import traceback

            traceback.print_exc()
            res[name] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        measure_flex(res, q, k, v, ref, n, reps)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        res["flex_block_sparse"] = {"error": f"{type(exc).__name__}: {exc}"}
    del q, k, v, ke, ve, qr, kr, vr, ref
    torch.cuda.empty_cache()
    return res


def measure_pattern(res, name, build, q, k, v, qr, kr, vr, ref, rows, G, n, reps) -> None:
    idx = build(q, k)
    out = sparse_attention(q, k, v, idx, backend="triton")
    torch.cuda.synchronize()
    t_total = bench(lambda: sparse_attention(q, k, v, build(q, k), backend="triton"), reps)
    t_index = bench(lambda: build(q, k), reps)
    recall = attention_recall(q, k, idx, rows)
    idx_r = build(qr, kr)
    recall_r = attention_recall(qr, kr, idx_r, rows)
    ref_r = F.scaled_dot_product_attention(qr, kr.repeat_interleave(G, 1), vr.repeat_interleave(G, 1), is_causal=True)
    res[name] = {
        "ms": t_total,
        "index_ms": t_index,
        "speedup_vs_cudnn": res["cudnn_ms"] / t_total,
        "speedup_vs_flash": res["flash_ms"] / t_total,
        "recall_mean": float(recall.mean()),
        "recall_min": float(recall.min()),
        "density": idx.density(n),
        "out_rel_err": rel_err(out, ref),
        "random_recall_mean": float(recall_r.mean()),
        "random_out_rel_err": rel_err(sparse_attention(qr, kr, vr, idx_r, backend="triton"), ref_r),
    }
    print(f"  {n:>6} {name:<15} {t_total:8.2f} ms (index {t_index:6.2f})  x{res[name]['speedup_vs_cudnn']:5.2f} vs cuDNN  "
          f"recall {res[name]['recall_mean']:.3f} (min {res[name]['recall_min']:.3f})  err {res[name]['out_rel_err']:.3f}", flush=True)
    del idx, out, idx_r


def check_correctness() -> list[str]:
    """Kernel vs torch reference on fresh random inputs at a moderate size (GPU)."""
    from ctxagent.kernels.reference import sparse_attention_reference

    lines = []
    for dtype in (torch.bfloat16, torch.float16):
        for D in (64, 128):
            for n in (1000, 4099):
                q, k, v = structured_qkv(2, 8, 2, n, D, seed=n + D, device="cuda", dtype=dtype)
                try:
                    from ctxagent.kernels.block_score import lse_block_probs

                    diff = (lse_block_probs(q, k, 64, backend="triton") - lse_block_probs(q, k, 64, backend="torch")).abs().max()
                    lines.append(f"check {str(dtype)[6:]:9} D={D:3} n={n:5} block-LSE estimate max |dp|={float(diff):.2e} {'OK' if diff < 2e-2 else 'FAIL'}")
                except Exception as exc:
                    lines.append(f"check block-LSE: failed {type(exc).__name__}: {exc}")
                for name, build in PATTERNS.items():
                    try:
                        if name == "a_shape":
                            idx = a_shape_index(2, 8, n, sink=64, local=512, device="cuda")
                        elif name == "vertical_slash":
                            idx = vertical_slash_index(q, k, n_vertical=256, n_diag=8)
                        else:
                            idx = block_sparse_index(q, k, gamma=0.9, max_blocks=16, estimate="pooled" if "pooled" in name else "lse")
                        out = sparse_attention(q, k, v, idx, backend="triton")
                    except Exception as exc:
                        lines.append(f"check {name}: kernel failed {type(exc).__name__}: {exc}")
                        continue
                    ref = sparse_attention_reference(q, k, v, idx)
                    err = rel_err(out, ref)
                    ok = err < 2e-2 and not torch.isnan(out).any()
                    lines.append(f"check {str(dtype)[6:]:9} D={D:3} n={n:5} {name:15} rel_err={err:.2e} {'OK' if ok else 'FAIL'}")
    return lines


def write_results(results: list[dict], gpu: str, out_dir: Path, checks: list[str], prov: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", gpu).strip("_").lower()
    header = (
        f"# Sparse prefill vs SDPA on {gpu}\n\n"
        f"torch {torch.__version__}, 32 q heads / 8 kv heads, head dim 128, bf16, batch 1, causal. "
        "Times are medians (triton.testing.do_bench), sparse times include index building. "
        "Recall = share of true attention mass on computed keys (128 sampled rows, mean / min over heads). "
        "Inputs: ctxagent.kernels.synthetic.structured_qkv (structured); `rand` = recall on Gaussian q/k.\n\n"
    )
    lines = ["| tokens | cuDNN ms | flash ms | pattern | ms (index) | x cuDNN | x flash | recall mean / min | density | out err | rand recall |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for name in PATTERNS:
            p = r[name]
            if "error" in p:
                lines.append(f"| {r['n']} | {r['cudnn_ms']:.2f} | {r['flash_ms']:.2f} | {name} | failed: {p['error'][:60]} | | | | | | |")
                continue
            lines.append(
                f"| {r['n']} | {r['cudnn_ms']:.2f} | {r['flash_ms']:.2f} | {name} | {p['ms']:.2f} ({p['index_ms']:.2f}) | "
                f"{p['speedup_vs_cudnn']:.2f} | {p['speedup_vs_flash']:.2f} | {p['recall_mean']:.3f} / {p['recall_min']:.3f} | "
                f"{p['density']:.3f} | {p['out_rel_err']:.3f} | {p['random_recall_mean']:.3f} |"
            )
    lines += ["", "FlexAttention (torch.compile) over the same block-sparse index, index building included:", "",
              "| tokens | flex ms | x cuDNN | ours (block_sparse) faster by | out err |", "|---:|---:|---:|---:|---:|"]
    for r in results:
        f = r.get("flex_block_sparse", {})
        if "ms" in f:
            lines.append(f"| {r['n']} | {f['ms']:.2f} | {f['speedup_vs_cudnn']:.2f} | {f['ours_vs_flex'] or float('nan'):.2f}x | {f['out_rel_err']:.3f} |")
        else:
            lines.append(f"| {r['n']} | failed: {f.get('error', 'not run')[:60]} | | | |")
    text = header + "\n".join(lines) + "\n\nCorrectness (kernel vs torch reference, GPU):\n\n" + "\n".join(f"    {c}" for c in checks) + "\n"
    provenance.finish(prov)
    text += "\n" + provenance.markdown_line(prov) + "\n"
    (out_dir / f"kernels_{slug}.md").write_text(text)
    (out_dir / f"kernels_{slug}.json").write_text(
        json.dumps({"provenance": prov, "gpu": gpu, "torch": torch.__version__, "results": results, "checks": checks}, indent=1)
    )
    print(text)
    plot_results(results, gpu, out_dir / f"kernels_{slug}.png")


def plot_results(results: list[dict], gpu: str, path: Path) -> None:
    """Kept apart from write_results so that a figure can be redrawn from a run's JSON alone."""
    plt = pyplot()
    if plt is None:
        print("matplotlib missing: no plot")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ns = [r["n"] for r in results]
    ax1.plot(ns, [r["cudnn_ms"] for r in results], "k-o", label="SDPA cuDNN")
    ax1.plot(ns, [r["flash_ms"] for r in results], "k--o", label="SDPA flash")
    for name in PATTERNS:
        ok = [r for r in results if "ms" in r[name]]
        ax1.plot([r["n"] for r in ok], [r[name]["ms"] for r in ok], "-o", label=name)
        ax2.plot([r["n"] for r in ok], [r[name]["speedup_vs_cudnn"] for r in ok], "-o", label=f"{name}")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tokens")
        ax.legend()
    ax1.set_yscale("log")
    ax1.set_ylabel("ms (sparse: incl. index)")
    ax2.set_ylabel("speed-up over cuDNN")
    ax2.axhline(5, color="grey", lw=0.5)
    fig.suptitle(f"Sparse prefill, 32/8 heads, d=128, bf16 - {gpu}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def index_breakdown(q, k) -> None:
    """Where index-building time goes (each stage timed alone, inputs precomputed)."""
    from ctxagent.kernels import index as ix
    from ctxagent.kernels.block_score import lse_block_scores, select_blocks_log

    N, D, L = q.shape[2], q.shape[3], 64
    probs = ix.last_query_attention(q, k, L, D**-0.5)
    vertical = probs.sum(2)
    slash = ix.slash_scores(probs)
    diag = ix.slash_to_diagonal_scores(slash, 64)
    cols = torch.topk(vertical, 1024, dim=-1, sorted=False).indices.sort(-1).values
    diags = torch.topk(diag, 32, dim=-1, sorted=False).indices.sort(-1).values
    scores, row_lse = lse_block_scores(q, k, 64, with_row_lse=True)
    stages = {
        "vs: last-query attention": lambda: ix.last_query_attention(q, k, L, D**-0.5),
        "vs: vertical sum": lambda: probs.sum(2),
        "vs: slash sums": lambda: ix.slash_scores(probs),
        "vs: diagonal scores": lambda: ix.slash_to_diagonal_scores(slash, 64),
        "vs: fused estimate (all of the above)": lambda: ix.vertical_slash_mass(q, k, last_q=L, backend="triton"),
        "vs: top-k columns": lambda: torch.topk(vertical, 1024, dim=-1, sorted=False).indices.sort(-1).values,
        "vs: top-k diagonals": lambda: torch.topk(diag, 32, dim=-1, sorted=False).indices.sort(-1).values,
        "vs: block lists": lambda: ix.diagonal_index(diags, cols, N, 64),
        "bs: block-LSE kernel": lambda: lse_block_scores(q, k, 64, with_row_lse=True),
        # in place as in block_sparse_index (repeats overwrite the same entries: timing only)
        "bs: selection": lambda: select_blocks_log(scores, gamma=0.95, max_blocks=64, row_lse=row_lse, inplace=True),
    }
    for name, fn in stages.items():
        print(f"index stage n={N} {name:<38} {bench(fn, 100):6.2f} ms", flush=True)


def sweep(n: int, args) -> None:
    """Budget variants (time incl. index, recall) and kernel launch settings at length n."""
    from ctxagent.kernels.triton_kernels import launch_sparse_attention

    q, k, v = structured_qkv(1, args.heads, args.kv_heads, n, args.dim, seed=n, device="cuda", dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(n)
    rows = torch.cat([torch.randint(0, n, (127,), generator=gen), torch.tensor([n - 1])]).sort().values.to("cuda")
    for name, build in VARIANTS.items():
        try:
            idx = build(q, k)
            t = bench(lambda: sparse_attention(q, k, v, build(q, k), backend="triton"), 300)
            t_idx = bench(lambda: build(q, k), 200)
            r = attention_recall(q, k, idx, rows)
            print(f"variant n={n} {name:<16} {t:7.2f} ms (index {t_idx:5.2f})  recall {float(r.mean()):.3f} (min {float(r.min()):.3f})  density {idx.density(n):.3f}", flush=True)
        except Exception as exc:
            print(f"variant n={n} {name}: failed {type(exc).__name__}: {exc}", flush=True)
    index_breakdown(q, k)
    out = torch.empty_like(q)
    launches = {  # label: (index, (warps, stages) settings)
        "vertical_slash": (vertical_slash_index(q, k, n_vertical=1024, n_diag=32), ((4, 2), (4, 3), (8, 3))),
        "vertical_slash 1024/16 block 128": (vertical_slash_index(q, k, n_vertical=1024, n_diag=16, block=128), ((8, 2), (8, 3), (4, 2))),
    }
    for label, (idx, settings) in launches.items():
        for warps, stages in settings:
            t = bench(lambda: launch_sparse_attention(q, k, v, out, idx, args.dim**-0.5, warps, stages), 300)
            print(f"sweep n={n} {label} warps={warps} stages={stages}: {t:.2f} ms (kernel only)", flush=True)
    dense_tail_timing(q, k, v)


def dense_tail_timing(q, k, v, tail: int = 256) -> None:
    """The dense tail's SDPA call (lower-right causal bias, GQA without copies) against
    the K/V-repeating explicit-mask call it replaced."""
    from ctxagent.kernels.attention import dense_attention

    n, group = k.shape[2], q.shape[1] // k.shape[1]
    qt = q[:, :, n - tail :]

    def repeated():
        kk, vv = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        mask = torch.ones(tail, n, dtype=torch.bool, device=q.device).tril_(n - tail)
        return F.scaled_dot_product_attention(qt, kk, vv, attn_mask=mask)

    new, old = dense_attention(qt, k, v), repeated()
    err = float((new.float() - old.float()).norm() / old.float().norm())
    print(f"dense tail n={n} rows={tail}: lower-right GQA {bench(lambda: dense_attention(qt, k, v), 200):.2f} ms, "
          f"repeat + mask {bench(repeated, 200):.2f} ms, rel diff {err:.1e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[16384, 32768, 65536, 131072])
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--reps-ms", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--skip-checks", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="also time kernel launch settings at the largest length")
    ap.add_argument("--allow-dirty", action="store_true", help="record results from a tree with uncommitted changes as <commit>-dirty")
    args = ap.parse_args()
    prov = provenance.stamp(args.allow_dirty)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/kernels.py needs a CUDA GPU (the kernels' CPU correctness runs in tests/test_kernels.py)")
    gpu = torch.cuda.get_device_name()
    print(f"{gpu}, torch {torch.__version__}, {platform.python_version()}", flush=True)
    started = time.time()
    checks = [] if args.skip_checks else check_correctness()
    for c in checks:
        print(c, flush=True)
    results = []
    for n in args.lengths:
        try:
            results.append(run_length(n, args))
        except Exception:  # keep what finished; say what broke
            import traceback

            traceback.print_exc()
            torch.cuda.empty_cache()
    write_results(results, gpu, args.out, checks, prov)
    if args.sweep:
        sweep(max(args.lengths), args)
    print(f"total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
