"""Retriever benchmark: index time, query time and recall@k on generated needle queries.

    python benchmarks/retrievers.py                      # 10k and 100k chunks
    python benchmarks/retrievers.py --sizes 2000 --dense-limit 2000   # quick look

Corpus: a seeded haystack of template prose (chunks of ~4 sentences), with two kinds of
needles planted in random chunks:

- exact-term needles: facts about an ID such as "Invoice XQ-7741 ...", each with three
  siblings that differ only in the ID's digits (XQ-7714, XQ-4177, ...); the query names
  the ID. Embeddings blur such IDs; BM25 should not.
- paraphrase needles: hand-written facts with a question that shares no content word
  with the fact (checked below), plus a trap sentence that shares a word with the
  question but does not answer it. BM25 cannot match these; embeddings should.

Rows: `bm25` (ours, on bm25s), `rank_bm25` (BM25Okapi with the same tokens: the baseline
library), `dense` (all-MiniLM-L6-v2), `hybrid` (convex fusion, the default) and
`hybrid-rrf` (weighted reciprocal rank fusion, k=60), plus `hybrid p=1` (convex with a
linear lexical score) to show why the default squares it. All rows of one size index
the same chunks and answer the same queries in the same process.

Dense encoding on a shared 2-core CPU is slow (tens of chunks per second when others
are busy). Above `--dense-limit` chunks the dense rows do not encode the corpus: index
time is extrapolated from the throughput measured at the largest size that did encode
(marked "est."), search latency is measured on a random unit-norm matrix of the true
shape (the product costs the same whatever the values), and recall is not reported.
BM25 rows always index and search the full corpus.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ctxagent.retrievers import Retriever, corpus_hash, get_retriever  # noqa: E402
from ctxagent.retrievers.bm25 import TOKEN_PATTERN  # noqa: E402
from ctxagent.types import Chunk  # noqa: E402

from provenance import finish, markdown_line, stamp  # noqa: E402  (benchmarks/ is on sys.path)
from plotting import pyplot  # noqa: E402  (benchmarks/ is on sys.path)

RESULTS = ROOT / "benchmarks" / "results"
KS = (1, 5, 10)

# ---------------------------------------------------------------- the haystack
_SLOTS = {
    "person": "the mayor,a retired teacher,the harbour master,an engineer,the librarian,a farmer,the new manager,a young nurse,the committee,an old fisherman,the inspector,a visiting scholar,the night guard,the treasurer,a shop owner".split(","),
    "place": "the market square,the northern district,the old mill,the railway depot,the town hall,the river bank,the east wing,the village school,the warehouse,the botanical garden,the stadium,the harbour,the clinic,the archive,the ferry terminal".split(","),
    "thing": "the annual budget,a proposal for new street lights,the repair schedule,the water supply,a report on traffic,the harvest festival,the heating system,the parking rules,a survey of local birds,the festival programme,the delivery routes,the cleaning contract,the spring exhibition,the staff rota,the recycling scheme".split(","),
    "verb": "discussed,reviewed,postponed,approved,criticised,praised,summarised,questioned,rewrote,presented,defended,inspected,measured,documented,rejected".split(","),
    "time": "on Monday,last week,in the spring,after lunch,before the holidays,during the storm,at dawn,late in the evening,in early autumn,at the end of the month,on a rainy afternoon,the following day".split(","),
    "adj": "quiet,crowded,cold,busy,muddy,bright,noisy,empty,windy,narrow,freshly painted,half-built".split(","),
    "doc": "invoice,ticket,shipment,record,order,permit,claim,receipt".split(","),
}
_TEMPLATES = [
    "{person} {verb} {thing} {time}.",
    "At {place}, {person} {verb} {thing}.",
    "{time}, {place} was {adj} and {person} {verb} {thing}.",
    "Nobody expected that {person} would have {verb} {thing} so quickly.",
    "The {doc} for {thing} was filed at {place} {time}.",
    "According to {person}, {place} is too {adj} for {thing}.",
    "{person} said the {doc} about {thing} had been {verb} {time}.",
    "Visitors found {place} {adj} when {person} {verb} {thing}.",
    "{thing} will be {verb} again at {place} {time}.",
    "A {doc} from {place} mentions {thing} and {person}.",
]


def _sentence(rng: random.Random) -> str:
    text = rng.choice(_TEMPLATES).format(**{k: rng.choice(v) for k, v in _SLOTS.items()})
    return text[0].upper() + text[1:]


def haystack(n_chunks: int, rng: random.Random, sentences: int = 4) -> list[list[str]]:
    return [[_sentence(rng) for _ in range(sentences)] for _ in range(n_chunks)]


# ---------------------------------------------------------------- the needles
_EXACT = [  # (fact with {code} and {x}, question with {code}, slot values for {x})
    ("Invoice {code} covered {x} and was paid in full.", "What did invoice {code} cover?", "the replacement turbine blades,new office chairs,forty litres of paint,a laser printer,the roof insulation,two delivery vans".split(",")),
    ("Shipment {code} left the depot carrying {x}.", "What was shipment {code} carrying?", "frozen fish,garden furniture,medical gloves,copper wire,school books,bicycle tyres".split(",")),
    ("Ticket {code} reports that {x} is broken.", "What does ticket {code} report as broken?", "the lift in block C,the coffee machine,the front gate,the boiler,the projector,the fire alarm".split(",")),
    ("Permit {code} allows {x} until the end of the year.", "What does permit {code} allow?", "street parking for one van,night work on the bridge,a market stall,fishing on the lake,a food truck,loud music on Fridays".split(",")),
]
_PARAPHRASE = [  # (fact, question sharing no content word with the fact, trap sharing a word with the question)
    ("The launch of the weather satellite was postponed by three weeks after engineers found a hairline crack in one of its fuel tanks.", "Why was the spacecraft mission delayed?", "Trains on the northern line were delayed because of heavy snow."),
    ("Our physician recommends that adults sleep seven to nine hours each night to keep their immune system strong.", "What amount of rest do doctors advise for grown-ups?", "Please rest the dough before baking it."),
    ("Third-quarter revenue rose to 26.4 million dollars, helped by strong sales of espresso machines.", "How much did the firm earn from July to September?", "The firm opened a new warehouse in September."),
    ("The bridge over the estuary was closed to lorries after inspectors discovered corroded steel cables.", "Why can heavy trucks no longer drive across?", "Heavy rain is expected across the region on Friday."),
    ("Mira Okafor was appointed to lead the marine biology institute after the previous head retired.", "Who became director of the ocean research centre?", "The research centre car park is closed for repairs."),
    ("The city's population grew by twelve percent during the last decade, mostly in the suburbs.", "By how much has the number of residents increased lately?", "The number of parking spaces was reduced."),
    ("Patients who took the new medication reported fewer migraines than those given a placebo.", "Did the drug reduce headaches during the trial?", "The trial of the former mayor begins in May."),
    ("The orchard's apple harvest failed this year because a late frost killed the blossoms.", "Why was there almost no fruit to pick in autumn?", "Pick up your tickets at the box office in autumn."),
    ("The novelist wrote her final book by hand in a cabin without electricity.", "How did the author compose her last work?", "The last ferry leaves at midnight."),
    ("The museum's most valuable painting was stolen overnight by thieves who cut through the roof.", "What happened to the gallery's priciest artwork?", "The gallery cafe now serves vegan lunches."),
    ("Fishing boats stayed in the harbour all week as storms battered the coast.", "Why did the trawlers not go out to sea?", "The sea view rooms are fully booked."),
    ("The factory cut its electricity bill by half after installing solar panels on the roof.", "How did the plant lower its power costs?", "The plant nursery sells roses and tulips."),
    ("Volunteers planted four thousand oak saplings on the hillside to prevent landslides.", "What was done to stop the slope from collapsing?", "Stop at the library to collect your order."),
    ("The airline grounded its entire fleet after a software fault disabled the booking system.", "Why were all the planes kept on the ground?", "The ground floor flat has a small garden."),
    ("A rare snow leopard was photographed by a hidden camera in the mountains of Nepal.", "Which elusive big cat was caught on film in the Himalayas?", "The cat shelter is looking for volunteers."),
    ("The school replaced printed textbooks with tablets for every pupil in the upper grades.", "What devices do children use now instead of paper manuals?", "Children under five travel free."),
    ("Water from the old well was found to contain dangerous levels of arsenic.", "Is it safe to drink from the ancient spring?", "The spring fair opens on Saturday."),
    ("The chef earned a third Michelin star for her seafood tasting menu.", "What top culinary award did the cook receive?", "The award ceremony was moved to June."),
    ("Ticket prices for the underground will rise by ten percent from January.", "How much more will subway fares cost next year?", "The new year concert sold out quickly."),
    ("The ancient manuscript was dated to the ninth century using radiocarbon analysis.", "How old is the medieval document according to lab tests?", "Lab results arrive by email within two days."),
]


@dataclass
class Query:
    text: str
    kind: str  # "exact" or "paraphrase"
    answer: int  # chunk position


def _code(rng: random.Random) -> tuple[str, list[str]]:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
    while True:
        digits = [rng.choice("123456789") for _ in range(4)]
        if len(set(digits)) >= 3:
            break
    sibling_digits: set[str] = set()
    while len(sibling_digits) < 3:
        perm = digits[:]
        rng.shuffle(perm)
        if perm != digits:
            sibling_digits.add("".join(perm))
    return f"{letters}-{''.join(digits)}", [f"{letters}-{d}" for d in sorted(sibling_digits)]


def build_corpus(n_chunks: int, n_exact: int, seed: int = 0) -> tuple[list[Chunk], list[Query]]:
    rng = random.Random(seed)
    chunks = haystack(n_chunks, rng)
    # every planted sentence goes to a distinct chunk, replacing one haystack sentence
    n_planted = n_exact * 4 + len(_PARAPHRASE) * 2
    if n_planted > n_chunks:
        raise SystemExit(f"--sizes must be at least {n_planted} chunks to plant the needles")
    slots = iter(rng.sample(range(n_chunks), n_planted))
    queries: list[Query] = []

    def plant(sentence: str) -> int:
        position = next(slots)
        chunks[position][rng.randrange(len(chunks[position]))] = sentence
        return position

    for i in range(n_exact):
        fact, question, values = _EXACT[i % len(_EXACT)]
        code, siblings = _code(rng)
        x = rng.choice(values)
        answer = plant(fact.format(code=code, x=x))
        for sibling in siblings:  # same template, other x, near-identical code
            plant(fact.format(code=sibling, x=rng.choice([v for v in values if v != x])))
        queries.append(Query(question.format(code=code), "exact", answer))
    for fact, question, trap in _PARAPHRASE:
        queries.append(Query(question, "paraphrase", plant(fact)))
        plant(trap)
    texts = [" ".join(sentences) for sentences in chunks]
    out, start = [], 0
    for index, text in enumerate(texts):
        out.append(Chunk(doc_id="haystack", index=index, start=start, end=start + len(text), text=text))
        start += len(text) + 2
    return out, queries


def check_paraphrases_share_no_content_word() -> list[str]:
    """Honesty check of the hand-written paraphrases, with BM25's own tokenizer."""
    import re

    from bm25s.stopwords import STOPWORDS_EN_PLUS

    def words(text: str) -> set[str]:
        return {w for w in re.findall(TOKEN_PATTERN, text.lower()) if w not in STOPWORDS_EN_PLUS}

    return [f"{q!r} shares {sorted(words(f) & words(q))}" for f, q, _ in _PARAPHRASE if words(f) & words(q)]


# ---------------------------------------------------------------- the rank_bm25 baseline
class RankBM25:
    """rank_bm25's BM25Okapi over the same tokens as our BM25 (bm25s tokenizer, same stopwords)."""

    def __init__(self) -> None:
        from bm25s.tokenization import Tokenizer

        self._tok = Tokenizer(lower=True, splitter=TOKEN_PATTERN, stopwords="en_plus")

    def index(self, chunks: list[Chunk]) -> None:
        from rank_bm25 import BM25Okapi

        tokens = self._tok.tokenize([c.text for c in chunks], return_as="string", show_progress=False)
        self._bm25 = BM25Okapi(tokens)

    def search_many(self, queries: list[str], k: int) -> list[list[int]]:
        out = []
        for query in queries:
            terms = [w for w in self._tok.splitter(query.lower()) if w not in set(self._tok.stopwords)]
            scores = self._bm25.get_scores(terms)
            top = np.argpartition(-scores, k)[:k]
            out.append([int(i) for i in top[np.argsort(-scores[top])] if scores[i] > 0])
        return out


# ---------------------------------------------------------------- measuring
@dataclass
class Row:
    retriever: str
    size: int
    index_s: float | None
    index_note: str = ""
    query_ms: float | None = None
    query_note: str = ""
    recall: dict[str, dict[int, float]] = field(default_factory=dict)
    disk_mb: float | None = None


def recall(results: list[list[int]], queries: list[Query]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for kind in ("exact", "paraphrase"):
        picked = [(r, q) for r, q in zip(results, queries) if q.kind == kind]
        out[kind] = {k: sum(q.answer in r[:k] for r, q in picked) / len(picked) for k in KS}
    return out


def timed_queries(search, queries: list[Query], max_queries: int) -> tuple[list[list[int]], float]:
    """Run queries one at a time (the latency a user sees); mean milliseconds per query."""
    subset = queries if max_queries <= 0 else queries[:max_queries]
    results, start = [], time.perf_counter()
    for q in subset:
        results.append(search(q.text))
    ms = (time.perf_counter() - start) * 1000 / len(subset)
    if len(subset) < len(queries):
        results += [search(q.text) for q in queries[len(subset):]]  # for recall, not timed
    return results, ms


def disk_mb(retriever) -> float:
    with TemporaryDirectory() as tmp:
        path = retriever.save(Path(tmp) / "idx")
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def run_size(size: int, n_exact: int, dense_limit: int, throughput: dict, rank_bm25_queries: int, embeddings_cache: str | None) -> list[Row]:
    chunks, queries = build_corpus(size, n_exact, seed=size)
    rows: list[Row] = []
    kmax = max(KS)
    print(f"\n== {size:,} chunks, {len(queries)} queries ({n_exact} exact-term, {len(_PARAPHRASE)} paraphrase) ==", flush=True)

    bm25 = get_retriever("bm25")
    t = time.perf_counter(); bm25.index(chunks); index_s = time.perf_counter() - t
    results, ms = timed_queries(lambda q: [h.chunk.index for h in bm25.search(q, kmax)], queries, 0)
    rows.append(Row("bm25 (bm25s)", size, index_s, query_ms=ms, recall=recall(results, queries), disk_mb=disk_mb(bm25)))
    print(rows[-1], flush=True)

    try:
        import rank_bm25  # noqa: F401  (the baseline library: not a ctxagent dependency)
    except ImportError:
        print("rank_bm25 row skipped: `pip install rank_bm25` to compare against it", flush=True)
    else:
        baseline = RankBM25()
        t = time.perf_counter(); baseline.index(chunks); index_s = time.perf_counter() - t
        results, ms = timed_queries(lambda q: baseline.search_many([q], kmax)[0], queries, rank_bm25_queries)
        note = f"mean of first {rank_bm25_queries} queries" if 0 < rank_bm25_queries < len(queries) else ""
        rows.append(Row("rank_bm25 (BM25Okapi)", size, index_s, query_ms=ms, query_note=note, recall=recall(results, queries)))
        print(rows[-1], flush=True)
        baseline = None  # free its memory before the dense rows
        gc.collect()

    # hybrid = the BM25 index above + the dense index below (its index time is their sum)
    hybrid = get_retriever("hybrid")
    dense = get_retriever("dense", show_progress=True)
    hybrid.bm25, hybrid.dense = bm25, dense
    if size <= dense_limit:
        encode_note = ""
        cached = Path(embeddings_cache) / f"dense-{size}-{corpus_hash(chunks)}" if embeddings_cache else None
        if cached is not None and (cached / "encode_seconds.json").is_file():
            dense = Retriever.load(cached, show_progress=True)
            hybrid.dense = dense
            meta = json.loads((cached / "encode_seconds.json").read_text())
            encode_s, encode_note = meta["seconds"], f"encode time measured {meta['when']} (load avg {meta['load_average']}) when these vectors were cached"
        else:
            t = time.perf_counter(); dense.index(chunks); encode_s = time.perf_counter() - t
            if cached is not None:
                dense.save(cached)
                meta = {"seconds": encode_s, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": [round(x, 1) for x in os.getloadavg()]}
                (cached / "encode_seconds.json").write_text(json.dumps(meta))
        throughput["chunks_per_s"] = size / encode_s
        throughput["measured_at"] = size
        hybrid.chunks, hybrid.corpus_hash = chunks, dense.corpus_hash
        results, ms = timed_queries(lambda q: [h.chunk.index for h in dense.search(q, kmax)], queries, 0)
        rows.append(Row("dense (MiniLM-L6)", size, encode_s, index_note=encode_note, query_ms=ms, recall=recall(results, queries), disk_mb=disk_mb(dense)))
        print(rows[-1], flush=True)
        hybrid_index_s = encode_s + rows[0].index_s
        rows += ann_rows(dense, chunks, queries, encode_s, "")
        for label, settings in (("hybrid (convex, default)", {}), ("hybrid (convex, p=1)", {"lexical_exponent": 1.0}), ("hybrid-rrf (k=60)", {"fusion": "rrf"})):
            hybrid.fusion, hybrid.lexical_exponent = settings.get("fusion", "convex"), settings.get("lexical_exponent", 2.0)
            results, ms = timed_queries(lambda q: [h.chunk.index for h in hybrid.search(q, kmax)], queries, 0)
            rows.append(Row(label, size, hybrid_index_s, index_note="bm25 + dense", query_ms=ms, recall=recall(results, queries)))
            print(rows[-1], flush=True)
    else:
        if "chunks_per_s" not in throughput:  # measure on a sample
            sample = [c.text for c in chunks[:1000]]
            t = time.perf_counter(); dense.encode(sample); throughput["chunks_per_s"] = len(sample) / (time.perf_counter() - t)
            throughput["measured_at"] = len(sample)
        est = size / throughput["chunks_per_s"]
        note = f"est. from {throughput['chunks_per_s']:.0f} chunks/s measured on {throughput['measured_at']:,} chunks"
        rng = np.random.default_rng(0)
        dense.embeddings = rng.standard_normal((size, 384), dtype=np.float32)
        dense.embeddings /= np.linalg.norm(dense.embeddings, axis=1, keepdims=True)
        dense.chunks, dense.corpus_hash = chunks, "not-encoded"
        hybrid.chunks, hybrid.corpus_hash = chunks, "not-encoded"
        qnote = "search over a random unit-norm matrix of this shape; recall not measured"
        _, ms = timed_queries(lambda q: [h.chunk.index for h in dense.search(q, kmax)], queries, 0)
        rows.append(Row("dense (MiniLM-L6)", size, est, index_note=note, query_ms=ms, query_note=qnote, disk_mb=dense.embeddings.nbytes / 1e6))
        print(rows[-1], flush=True)
        for label, fusion in (("hybrid (convex, default)", "convex"), ("hybrid-rrf (k=60)", "rrf")):
            hybrid.fusion = fusion
            _, ms = timed_queries(lambda q: [h.chunk.index for h in hybrid.search(q, kmax)], queries, 0)
            rows.append(Row(label, size, est + rows[0].index_s, index_note="bm25 + dense, est.", query_ms=ms, query_note=qnote))
            print(rows[-1], flush=True)
    return rows


def ann_rows(dense, chunks: list[Chunk], queries: list[Query], encode_s: float, qnote: str) -> list[Row]:
    """The optional faiss HNSW backend over the same vectors (skipped without faiss)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("dense+hnsw row skipped: `pip install ctxagent[ann]` to measure it", flush=True)
        return []
    ann = get_retriever("dense", ann="hnsw")
    t = time.perf_counter(); ann._ann_index = ann._build_ann(dense.embeddings); build_s = time.perf_counter() - t
    ann.embeddings, ann.chunks, ann.corpus_hash = dense.embeddings, chunks, dense.corpus_hash
    results, ms = timed_queries(lambda q: [h.chunk.index for h in ann.search(q, max(KS))], queries, 0)
    note = f"encode + {build_s:.1f} s HNSW build (M={ann.ann_m}, efConstruction={ann.ann_ef_construction}, efSearch={ann.ann_ef_search})"
    row = Row("dense + hnsw (faiss)", len(chunks), encode_s + build_s, index_note=note, query_ms=ms, query_note=qnote, recall={} if qnote else recall(results, queries))
    print(row, flush=True)
    return [row]


# ---------------------------------------------------------------- reporting
def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
    }


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def write_report(rows: list[Row], info: dict, warnings: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retrievers.json").write_text(json.dumps({"machine": info, "rows": [asdict(r) for r in rows], "warnings": warnings}, indent=1))
    lines = [
        "# Retriever benchmark",
        "",
        markdown_line(info["provenance"]) if "provenance" in info else "No provenance recorded: this run predates commit stamping.",
        "",
        f"Machine: {info['platform']}, {info['cpus']} CPUs, torch threads {info['torch_threads']} for encoding the corpus (queries: 1), "
        f"load average {tuple(round(x, 1) for x in info['load_average_start'])} at start and "
        f"{tuple(round(x, 1) for x in info['load_average_end'])} at the end (the CPUs are shared: timings are noisy). "
        f"Peak memory of the whole run: {info['peak_rss_mb']:,.0f} MB.",
        "",
        "| retriever | chunks | index s | query ms | R@1 exact | R@10 exact | R@1 para | R@10 para | index MB on disk | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ex, pa = r.recall.get("exact", {}), r.recall.get("paraphrase", {})
        notes = "; ".join(n for n in (r.index_note, r.query_note) if n)
        lines.append(
            f"| {r.retriever} | {r.size:,} | {fmt(r.index_s)} | {fmt(r.query_ms)} | {fmt(ex.get(1))} | {fmt(ex.get(10))} | "
            f"{fmt(pa.get(1))} | {fmt(pa.get(10))} | {fmt(r.disk_mb, 1)} | {notes} |"
        )
    lines += ["", "## Ratios (bm25s vs rank_bm25, same tokens, same queries)", ""]
    for size in sorted({r.size for r in rows}):
        ours = next(r for r in rows if r.size == size and r.retriever.startswith("bm25"))
        base = next((r for r in rows if r.size == size and r.retriever.startswith("rank_bm25")), None)
        if base is None:
            continue
        lines.append(
            f"- {size:,} chunks: query {base.query_ms / ours.query_ms:.0f}x faster with bm25s ({ours.query_ms:.2f} vs {base.query_ms:.1f} ms); "
            f"index time bm25s / rank_bm25 = {ours.index_s / base.index_s:.2f} ({ours.index_s:.2f} vs {base.index_s:.2f} s, tokenizing included)"
        )
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    (RESULTS / "retrievers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows)


def plot(rows: list[Row]) -> None:
    plt = pyplot()
    if plt is None:
        return
    sizes = sorted({r.size for r in rows})
    names = list(dict.fromkeys(r.retriever for r in rows))
    fig, axes = plt.subplots(1, 2 + len(sizes), figsize=(7 * (2 + len(sizes)) * 0.8, 5.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        by_size = {r.size: r for r in rows if r.retriever == name}
        xs = np.arange(len(sizes)) + i * width
        axes[0].bar(xs, [by_size[s].index_s if s in by_size and by_size[s].index_s else 0 for s in sizes], width, label=name,
                    hatch=["//" if s in by_size and "est." in by_size[s].index_note else "" for s in sizes] or None)
        axes[1].bar(xs, [by_size[s].query_ms if s in by_size and by_size[s].query_ms else 0 for s in sizes], width, label=name,
                    hatch=["//" if s in by_size and "random" in by_size[s].query_note else "" for s in sizes] or None)
    for ax, title in ((axes[0], "index time, s (hatched: estimated)"), (axes[1], "query latency, ms, one query at a time\n(hatched: dense part on a random matrix)")):
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2, [f"{s:,} chunks" for s in sizes])
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=7)
    for ax, size in zip(axes[2:], sizes):
        measured = [r for r in rows if r.size == size and r.recall]
        labels = [r.retriever for r in measured]
        for j, kind in enumerate(("exact", "paraphrase")):
            for m, k in enumerate((1, 10)):
                ax.bar(np.arange(len(labels)) + (2 * j + m) * 0.2, [r.recall[kind][k] for r in measured], 0.2, label=f"{kind} R@{k}")
        ax.set_xticks(np.arange(len(labels)) + 0.3, labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"recall on needle queries, {size:,} chunks", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "retrievers.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--exact-queries", type=int, default=60, help="exact-term needle queries per size")
    parser.add_argument("--dense-limit", type=int, default=10_000, help="largest size at which the dense rows really encode the corpus")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads for encoding (default: torch's own; 1 is faster on an oversubscribed CPU)")
    parser.add_argument("--rank-bm25-queries", type=int, default=20, help="time only this many rank_bm25 queries (it is slow); 0 = all")
    parser.add_argument("--embeddings-cache", default=None, help="keep encoded corpora here and reuse them (with the encode time measured when they were made) on later runs")
    parser.add_argument("--report-only", action="store_true", help="rewrite the table and plot from results/retrievers.json")
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes (results say '<commit>-dirty')")
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads((RESULTS / "retrievers.json").read_text())
        rows = [Row(**{**r, "recall": {kind: {int(k): v for k, v in by_k.items()} for kind, by_k in r["recall"].items()}}) for r in saved["rows"]]
        write_report(rows, saved["machine"], saved["warnings"])
        return

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    warnings = check_paraphrases_share_no_content_word()
    for w in warnings:
        print("warning: paraphrase", w)
    provenance = stamp(args.allow_dirty)
    info = machine()
    info["argv"] = sys.argv[1:]
    rows: list[Row] = []
    throughput: dict = {}
    for size in sorted(args.sizes):
        rows += run_size(size, args.exact_queries, args.dense_limit, throughput, args.rank_bm25_queries, args.embeddings_cache)
    info["load_average_end"] = os.getloadavg()
    info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info["provenance"] = finish(provenance)
    write_report(rows, info, warnings)


if __name__ == "__main__":
    main()
