"""Corpus index benchmark: build time, incremental update and query latency over many real-text files.

A corpus of DOCS files is cut from the bundled Austen novels (each file a distinct run of
real paragraphs), then for each retriever (BM25 and hybrid BM25 + MiniLM):

- full build: `CorpusIndex.update()` on an empty index (read, chunk, embed, save);
- incremental update after editing one file (ours) against a full rebuild (the baseline
  a tool without incremental indexing pays), measured side by side in the same run;
- query latency of `CorpusIndex.search(q, 8)` over real questions (median and p95);
- peak resident memory of the process that did it (each retriever in its own process).

    python benchmarks/corpus.py --docs 10000            # published run (see docs/corpus.md)
    python benchmarks/corpus.py --docs 200 --queries 20 --allow-dirty   # smoke test

Writes benchmarks/results/corpus.{md,json,png}, stamped with benchmarks/provenance.py.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from provenance import finish, markdown_line, shared_note, stamp  # noqa: E402
from plotting import pyplot  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "ctxagent" / "evaluation" / "data"
NOVELS = ("emma", "persuasion", "pride_and_prejudice")


def real_paragraphs() -> list[str]:
    out = []
    for novel in NOVELS:
        text = (DATA / f"{novel}.txt").read_text(encoding="utf-8")
        out += [p.strip() for p in text.split("\n\n") if len(p.strip()) > 60]
    return out


def write_corpus(folder: Path, n_docs: int) -> None:
    """n_docs files, each 3 real paragraphs; file i starts at paragraph i and steps by a
    per-file stride, so no two files hold the same text even when n_docs exceeds the pool."""
    pool = real_paragraphs()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_docs):
        stride = 1 + (i // len(pool)) % 7
        picks = [pool[(i + j * stride) % len(pool)] for j in range(3)]
        (folder / f"{i // 1000:03d}").mkdir(exist_ok=True)
        (folder / f"{i // 1000:03d}" / f"doc_{i:06d}.txt").write_text("\n\n".join(picks) + f"\n\n(file {i})\n", encoding="utf-8")


def questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in (DATA / "qa.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    qs = [r["question"] for r in rows]
    pool = real_paragraphs()
    qs += [" ".join(p.split()[:12]) for p in pool[:: max(1, len(pool) // n)]]  # opening words of real paragraphs
    return qs[:n]


def measure(retriever: str, corpus: str, n_queries: int) -> dict[str, Any]:
    """One retriever, in its own process so its memory peak is its own."""
    from ctxagent.batch.corpus import Corpus
    from ctxagent.corpus.index import CorpusIndex

    with tempfile.TemporaryDirectory() as root:
        began = time.perf_counter()
        report = CorpusIndex(Corpus(corpus), root=root, retriever=retriever).update(progress=True)
        build = time.perf_counter() - began
        # one file edited: ours updates incrementally; the baseline rebuilds everything
        target = sorted(Path(corpus).rglob("*.txt"))[len(report.added) // 2]
        target.write_text(target.read_text(encoding="utf-8") + "\nA sentence added for the update test.\n", encoding="utf-8")
        began = time.perf_counter()
        update = CorpusIndex(Corpus(corpus), root=root, retriever=retriever).update(progress=False)
        incremental = time.perf_counter() - began
        with tempfile.TemporaryDirectory() as fresh:
            began = time.perf_counter()
            CorpusIndex(Corpus(corpus), root=fresh, retriever=retriever).update(progress=False)
            rebuild = time.perf_counter() - began
        began = time.perf_counter()
        index = CorpusIndex(Corpus(corpus), root=root, retriever=retriever).load()
        load = time.perf_counter() - began
        qs = questions(n_queries)
        index.search(qs[0], 8)  # warm-up: first query loads the embedder
        latencies = []
        for q in qs:
            t = time.perf_counter()
            index.search(q, 8)
            latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    return {
        "retriever": retriever, "documents": report.documents, "chunks": report.chunks,
        "build_s": round(build, 2), "docs_per_s": round(report.documents / build, 1),
        "incremental_s": round(incremental, 2), "rebuild_s": round(rebuild, 2), "rebuild_over_incremental": round(rebuild / incremental, 1),
        "embedded_on_update": update.embedded_chunks, "load_s": round(load, 2),
        "query_median_ms": round(statistics.median(latencies), 1), "query_p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
        "queries": len(latencies), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def write_report(rows: list[dict[str, Any]], provenance: dict[str, Any], n_docs: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "corpus.json").write_text(json.dumps({"provenance": provenance, "docs": n_docs, "rows": rows}, indent=1), encoding="utf-8")
    head = "| retriever | documents | chunks | build s | docs/s | update after 1 edit s | full rebuild s | rebuild / update | chunks embedded on update | query median ms | query p95 ms | peak RSS MB |"
    lines = [
        f"# Corpus index: {n_docs:,} files of real text", "",
        head, "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['retriever']} | {r['documents']:,} | {r['chunks']:,} | {r['build_s']} | {r['docs_per_s']} | {r['incremental_s']} | {r['rebuild_s']} | "
            f"{r['rebuild_over_incremental']}x | {r['embedded_on_update']} | {r['query_median_ms']} | {r['query_p95_ms']} | {r['peak_rss_mb']} |"
        )
    note = shared_note(provenance.get("load_start") or [], provenance.get("machine", {}).get("cpus"))
    lines += ["", "`rebuild / update`: a full rebuild's time over the incremental update's, after editing one file, measured in the same run.", *([note] if note else []), "", markdown_line(provenance), ""]
    (RESULTS / "corpus.md").write_text("\n".join(lines), encoding="utf-8")
    plt = pyplot()
    if plt is None:
        print("matplotlib not installed: no plot", file=sys.stderr)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        names = [r["retriever"] for r in rows]
        axes[0].bar([f"{n}\nfull" for n in names] + [f"{n}\n1 edit" for n in names], [r["rebuild_s"] for r in rows] + [r["incremental_s"] for r in rows], color=["#888"] * len(rows) + ["#2a7"] * len(rows))
        axes[0].set_ylabel("seconds")
        axes[0].set_title(f"index {n_docs:,} files: full rebuild vs incremental")
        axes[1].bar([f"{n}\nmedian" for n in names] + [f"{n}\np95" for n in names], [r["query_median_ms"] for r in rows] + [r["query_p95_ms"] for r in rows])
        axes[1].set_ylabel("ms per query (k=8)")
        axes[1].set_title("query latency")
        fig.tight_layout()
        fig.savefig(RESULTS / "corpus.png", dpi=110)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=10_000, help="files in the generated corpus (default 10,000)")
    parser.add_argument("--queries", type=int, default=100, help="queries timed per retriever (default 100)")
    parser.add_argument("--retrievers", default="bm25,hybrid", help="comma-separated (default bm25,hybrid)")
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes (results say '<commit>-dirty')")
    args = parser.parse_args()
    provenance = stamp(args.allow_dirty)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus, args.docs)
        for retriever in args.retrievers.split(","):
            with mp.get_context("spawn").Pool(1) as pool:
                rows.append(pool.apply(measure, (retriever, str(corpus), args.queries)))
            print(json.dumps(rows[-1]), flush=True)
    write_report(rows, finish(provenance), args.docs)


if __name__ == "__main__":
    main()
