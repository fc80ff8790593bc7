"""What grows in `ctxagent serve` under the soak's load: Python objects or native memory.

Runs the soak's clients (benchmarks/serve_soak.py: same documents, request mix and checks)
against a server started through this file, which samples from inside the server process
every `--every` seconds: resident memory (/proc/self/status), glibc's heap counters
(mallinfo2: bytes in use, bytes free but kept, mmapped bytes, and the number of arenas),
the bytes Python's tracemalloc traces (started at the end of warm-up, so it sees what was
allocated after it and is still alive), live objects by type (gc), and threads. At the end
it writes the tracemalloc lines holding the most memory allocated after warm-up.

RSS minus what tracemalloc holds is native memory (torch, tokenizers, the allocator's free
lists); `free_kept` is memory glibc holds free without giving it back (fragmentation, arenas).

    python benchmarks/serve_memory_probe.py --minutes 4 --clients 8 --warmup-minutes 1
    MALLOC_ARENA_MAX=16 python benchmarks/serve_memory_probe.py ... --serve-args="--trim-seconds 0" --out probe_untrimmed   # as before the fix

Writes benchmarks/results/<out>.{jsonl,md} (samples; the md has the provenance and the last
sample's largest tracemalloc lines) and <out>.log (the server's log).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# -- inside the server process -----------------------------------------------------------
def _sampler(path: Path, every: float, warmup: float, depth: int) -> None:
    import gc
    import tracemalloc
    from collections import Counter

    from ctxagent.server.memory import arenas, heap_stats

    began = time.monotonic()
    traced_from: float | None = None
    first_types: Counter | None = None
    while True:
        time.sleep(every)
        now = time.monotonic() - began
        if traced_from is None and now >= warmup and depth > 0:
            tracemalloc.start(depth)
            traced_from = now
            first_types = Counter(type(o).__name__ for o in gc.get_objects())
        sample = {"t": round(now, 1), "rss_mib": _rss_mib(), "threads": threading.active_count(), **heap_stats(), "arenas": arenas()}
        if traced_from is not None:
            sample["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            types = Counter(type(o).__name__ for o in gc.get_objects())
            sample["objects"] = sum(types.values())
            sample["types_grown"] = dict((types - first_types).most_common(8))
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            sample["top"] = [
                f"{s.size / 2**20:.1f} MiB {s.count} blocks: " + " <- ".join(f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in s.traceback[:4])
                for s in snapshot.statistics("traceback")[:6]
            ]
        with open(path, "a") as f:
            f.write(json.dumps(sample) + "\n")


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def server_main() -> None:
    """`python serve_memory_probe.py --server SAMPLES EVERY WARMUP DEPTH <serve args>`."""
    path, every, warmup, depth = Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    # Off sys.path: benchmarks/kernels.py would shadow the `kernels` package transformers imports.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
    threading.Thread(target=_sampler, args=(path, every, warmup, depth), daemon=True, name="memory-probe").start()
    from ctxagent.cli import main

    sys.argv = ["ctxagent", *sys.argv[6:]]
    raise SystemExit(main())


# -- the driver ----------------------------------------------------------------------------
def main() -> None:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
    sys.path.insert(0, str(ROOT))
    import subprocess

    from benchmarks import serve_soak as soak

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--warmup-minutes", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--recipe", default="retrieve_then_reason")
    parser.add_argument("--context-window", type=int, default=2048)
    parser.add_argument("--doc-windows", type=float, default=4.0)
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--max-requests-per-client", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="serve_memory_probe", help="results file stem under benchmarks/results")
    parser.add_argument("--trace-depth", type=int, default=6, help="frames tracemalloc keeps after warm-up; 0: no tracemalloc (it slows the server)")
    parser.add_argument("--serve-args", default="", help="more `ctxagent serve` flags, e.g. '--trim-seconds 0'")
    parser.add_argument("--allow-dirty", action="store_true", help="record results from a tree with uncommitted changes")
    args = parser.parse_args()
    from benchmarks import provenance

    block = provenance.stamp(args.allow_dirty)
    docs = soak.documents(args.context_window, args.documents, args.doc_windows)
    samples = ROOT / "benchmarks" / "results" / f"{args.out}.jsonl"
    samples.unlink(missing_ok=True)
    command = [
        sys.executable,
        __file__,
        "--server",
        str(samples),
        str(args.every),
        str(60 * args.warmup_minutes),
        str(args.trace_depth),
        "serve",
        "--host",
        soak.HOST,
        "--port",
        "0",
        "--api-key",
        soak.KEY,
        "--context-window",
        str(args.context_window),
        "--max-body-bytes",
        str(soak.MAX_BODY),
        "--max-new-tokens",
        "32",
        "--request-timeout",
        str(args.request_timeout),
        "--max-concurrent",
        str(args.clients),
        *args.serve_args.split(),
    ]
    log = open(samples.with_suffix(".log"), "w")
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()
    if " at http://" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    base = line.rsplit(" at ", 1)[1].strip()
    outcomes: list = []
    lock = threading.Lock()
    deadline = time.monotonic() + 60 * args.minutes
    threads = [threading.Thread(target=soak.client_loop, args=(n, base, deadline, docs, args, outcomes, lock), daemon=True) for n in range(args.clients)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(args.every + 1)
    finally:
        process.terminate()
        process.wait(timeout=60)
    provenance.finish(block)
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    lost = sum(o.result == "lost" for o in outcomes)
    columns = ["t", "rss_mib", "in_use", "free_kept", "mmapped", "arenas", "threads", "traced_mib", "objects"]
    lines = [
        "# What grows in `ctxagent serve`",
        "",
        provenance.markdown_line(block),
        "",
        f"{args.clients} clients, {args.minutes:g} min, warm-up {args.warmup_minutes:g} min, serve args {args.serve_args or '(none)'}, "
        f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '(unset)')}; {len(outcomes)} requests, {lost} lost. MiB but arenas, threads, objects; "
        "in_use/free_kept/mmapped from glibc's mallinfo2; traced_mib: Python memory allocated after warm-up and still alive.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows],
    ]
    if rows and "top" in rows[-1]:
        lines += [
            "",
            "Object types grown since warm-up (last sample): " + str(rows[-1]["types_grown"]),
            "",
            "Largest tracemalloc lines (last sample):",
            "",
            *[f"- {t}" for t in rows[-1]["top"]],
        ]
    samples.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        server_main()
    else:
        main()
