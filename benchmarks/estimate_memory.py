"""The vertical-slash index of one chunk of a chunked prefill, its estimate computed whole
against a key chunk at a time: peak GPU memory above the inputs, time, and whether the two
indexes agree.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/estimate_memory.py \
        [--lengths 262144 524288 1048576] [--queries 32768] [--heads 32 --kv-heads 8 --dim 128]

One layer of the 8B-shaped model (32 query / 8 KV heads of 128, bf16): the queries are the
last `--queries` of N keys (the last chunk of a prefill `--queries` tokens a chunk), the
index is the default vertical-slash (1024 columns, 32 diagonals, the last 64 queries;
`--spread-q` adds rows). Random q/k: memory and time do not depend on the values; the
agreement column counts the heads whose columns and diagonals are the same. "whole" is
the estimate as it ran before chunking (and still runs up to CHUNK_KEYS_ABOVE keys),
"chunked" the key-chunked one at the size the library picks above that threshold.
Peak = torch.cuda.max_memory_allocated during the index build minus what was allocated
before it. Writes <out>/<name>.{md,json}, stamped with the commit (benchmarks/provenance.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(_HERE)]
import provenance  # noqa: E402


def measure(build, reps: int, cuda: bool) -> tuple[float, float, object]:
    """Median seconds, peak GiB above the memory allocated before (0 off CUDA), and the last result."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = build()  # warm-up
    del out
    if cuda:
        sync()
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        out = build()
        sync()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() - before) / 2**30 if cuda else 0.0
    return sorted(times)[len(times) // 2], peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[262144, 524288, 1048576])
    ap.add_argument("--queries", type=int, default=32768)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--last-q", type=int, default=64)
    ap.add_argument("--spread-q", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default=None)
    ap.add_argument("--allow-dirty", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a smoke test at toy sizes (runs on a CPU; no memory figures there)")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    if args.quick:
        args.lengths, args.queries, args.heads, args.kv_heads, args.dim, args.reps = [4096], 1024, 4, 2, 64, 1
        args.name = args.name or "estimate_memory_quick"
    elif not cuda:
        raise SystemExit("benchmarks/estimate_memory.py measures GPU memory: it needs a CUDA GPU (--quick runs toy sizes on a CPU)")
    device = "cuda" if cuda else "cpu"
    from ctxagent.kernels import index as ix

    prov = provenance.stamp(args.allow_dirty)
    gpu = torch.cuda.get_device_name() if cuda else "CPU"
    rows = []
    for n in args.lengths:
        gen = torch.Generator(device).manual_seed(n)
        q = torch.randn(1, args.heads, args.queries, args.dim, device=device, dtype=torch.bfloat16, generator=gen)
        k = torch.randn(1, args.kv_heads, n, args.dim, device=device, dtype=torch.bfloat16, generator=gen)
        chunk = 1000 if args.quick else ix.estimate_key_chunk(1, args.heads, args.last_q)
        row: dict = {"keys": n, "queries": args.queries, "key_chunk": chunk}
        built = {}
        for name, key_chunk in (("whole", n), ("chunked", chunk)):
            build = functools.partial(ix.vertical_slash_index, q, k, last_q=args.last_q, spread_q=args.spread_q, key_chunk=key_chunk)
            try:
                row[f"{name}_s"], row[f"{name}_peak_gib"], built[name] = measure(build, args.reps, cuda)
            except torch.OutOfMemoryError as exc:
                row[f"{name}_s"] = f"out of memory: {str(exc)[:60]}"
                torch.cuda.empty_cache()
            print(n, name, row.get(f"{name}_s"), row.get(f"{name}_peak_gib"), flush=True)
        if len(built) == 2:
            a, b = built["whole"], built["chunked"]
            same = (a.cols == b.cols).all(-1) & (a.is_diag == b.is_diag).all(-1)
            row["same_heads"] = f"{int(same.sum())}/{same.numel()}"
        rows.append(row)
        del q, k, built
        if cuda:
            torch.cuda.empty_cache()
    prov = provenance.finish(prov)
    name = args.name or "estimate_memory_" + "".join(c if c.isalnum() else "_" for c in gpu)
    fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else str(x)  # noqa: E731
    lines = [
        f"# Vertical-slash index of one prefill chunk: estimate whole vs key-chunked, {gpu}",
        "",
        f"One layer, {args.heads} query / {args.kv_heads} KV heads of {args.dim}, bf16, the last {args.queries} queries over N keys, "
        f"last_q {args.last_q}, spread_q {args.spread_q}; median of {args.reps}. Peak = GiB allocated above the inputs during the build.",
        "",
        "| keys | key chunk | whole s | chunked s | whole peak GiB | chunked peak GiB | heads with the same index |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["keys"], r["key_chunk"], r.get("whole_s"), r.get("chunked_s"), r.get("whole_peak_gib"), r.get("chunked_peak_gib"), r.get("same_heads", "-")]
        lines.append("| " + " | ".join(fmt(c) for c in cells) + " |")
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(json.dumps({"provenance": prov, "gpu": gpu, "args": {k: str(v) for k, v in vars(args).items()}, "results": rows}, indent=1))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
