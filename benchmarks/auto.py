"""`auto` under the interactive time budget vs the old behaviour, on real text with the embedded model.

Two documents, both real public-domain text (the Jane Austen excerpts bundled in
ctxagent/evaluation/data), with facts planted in them:

- a ~32K-token document (4x the embedded window) with several planted facts and a
  question of a different kind for each (a number, a place, a date, a name asked
  with other words); target: median seconds per question at most 60;
- a ~2 MB document (the three excerpts, paragraphs reshuffled per repeat; ~500K
  tokens) with one planted fact, asked twice (two wordings): the first question's
  time includes chunking and indexing (target at most 90 s), the next one's reuses
  the cached index (target at most 15 s).

"ours" is `ContextAgent().ask(doc, q)`: recipe `auto` with the default interactive
budget (60 s), at speeds measured on this machine at the start of the run. The
baseline is what `auto` chose before (map_reduce, reading everything, no time
limit); on the 2 MB document the baseline is stopped at `--baseline-cap` seconds
(it took over 400 s without an answer before) and recorded as such. Both run in
one process, side by side, on the same questions. An answer is right when it
contains the planted value. Writes benchmarks/results/auto.{md,json,png}.

    python benchmarks/auto.py                     # full run (see docs/recipes.md for its duration)
    python benchmarks/auto.py --tokens 4000 --big-chars 300000 --questions 1 --baseline-cap 60 --out /tmp/auto-smoke
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import finish, markdown_line, shared_note, stamp  # noqa: E402
from benchmarks.plotting import pyplot  # noqa: E402

DATA = ROOT / "ctxagent" / "evaluation" / "data"
RESULTS = ROOT / "benchmarks" / "results"

# (fact planted, question, value that a right answer contains, kind)
FACTS = [
    ("Captain Harwood's favourite number was 7341, as everyone in the village knew.", "What was Captain Harwood's favourite number?", "7341", "number"),
    ("The silver key to the old library had been hidden beneath the blue vase in the music room.", "Where had the silver key to the old library been hidden?", "blue vase", "place"),
    ("Miss Eleanor Pryce arrived at Kellynch on the ninth of March, in a great storm.", "On what day did Miss Eleanor Pryce arrive at Kellynch?", "ninth of March", "date"),
    ("The carriage from Bath was driven by a coachman named Thomas Whitlock.", "Who was the driver of the coach that came from Bath?", "Whitlock", "name (other words)"),
]
BIG_FACT = ("The harbour master of Lyme kept his ledgers locked in a green iron chest numbered 5208.", "5208")
BIG_QUESTIONS = ["What number was on the harbour master's green iron chest?", "Which number did the iron chest of the harbour master of Lyme carry?"]


@dataclass
class Row:
    document: str
    question: str
    kind: str
    system: str  # "ours" | "baseline"
    recipe: str
    seconds: float
    correct: bool
    partial: bool
    answer: str
    engine_calls: int
    prompt_tokens: int


def paragraphs() -> list[str]:
    return [p.strip() for f in sorted(DATA.glob("*.txt")) for p in f.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 40]


def plant(paras: list[str], facts: list[str], seed: int) -> str:
    """Insert each fact as its own paragraph at evenly spread depths (10%..90%)."""
    out = list(paras)
    n = len(facts)
    for i, fact in enumerate(facts):
        depth = 0.1 + 0.8 * (i / max(1, n - 1)) if n > 1 else 0.6
        out.insert(int(depth * len(out)), fact)
    return "\n\n".join(out)


def document_of_tokens(tokens: int, count, facts: list[str], seed: int = 0) -> str:
    """Real paragraphs, in order, until the document (with facts) reaches `tokens`."""
    taken, total = [], 0
    for p in paragraphs():
        if total >= tokens:
            break
        taken.append(p)
        total += count(p) + 1
    return plant(taken, facts, seed)


def document_of_chars(chars: int, facts: list[str], seed: int = 0) -> str:
    rng, source, taken, total = random.Random(seed), paragraphs(), [], 0
    while total < chars:
        block = list(source)
        rng.shuffle(block)
        for p in block:
            if total >= chars:
                break
            taken.append(p)
            total += len(p) + 2
    return plant(taken, facts, seed)


def ask(agent, document, question: str, value: str, budget, recipe: str, doc_name: str, kind: str, system: str) -> Row:
    began = time.perf_counter()
    answer = agent.ask(document, question, recipe=recipe, budget=budget)
    seconds = time.perf_counter() - began
    row = Row(doc_name, question, kind, system, answer.recipe, round(seconds, 2), value.lower() in answer.text.lower(), answer.partial,
              answer.text[:200], answer.usage.engine_calls, answer.usage.prompt_tokens)
    print(f"  {system:8s} {answer.recipe:28s} {seconds:7.1f}s right={row.correct} {answer.text[:80]!r}", file=sys.stderr)
    return row


def isolated_cache() -> Path:
    """A fresh cache for chunks and indexes (so the first question really indexes), sharing the
    converted model weights and speed measurements of the real cache."""
    from ctxagent.cache import cache_dir

    fresh = Path(tempfile.mkdtemp(prefix="ctxagent-bench-auto-"))
    for shared in ("models", "speeds", "effective_context"):
        (fresh / shared).symlink_to(cache_dir(shared), target_is_directory=True)
    return fresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=32_000, help="length of the first document in the model's tokens")
    parser.add_argument("--big-chars", type=int, default=2_000_000, help="size of the large document in characters")
    parser.add_argument("--questions", type=int, default=len(FACTS), help="questions on the first document (max %d)" % len(FACTS))
    parser.add_argument("--baseline-cap", type=float, default=400.0, help="seconds after which the baseline stops on the large document")
    parser.add_argument("--skip-baseline", action="store_true", help="ours only (no ratios)")
    parser.add_argument("--allow-dirty", action="store_true")
    parser.add_argument("--out", default=str(RESULTS), help="folder for auto.md/json/png")
    args = parser.parse_args()
    provenance = stamp(args.allow_dirty)
    os.environ["CTXAGENT_CACHE"] = str(isolated_cache())

    from ctxagent import Budget, ContextAgent
    from ctxagent.engines.reach import effective_context
    from ctxagent.engines.speed import measure_speed
    from ctxagent.types import Document

    agent = ContextAgent()
    began = time.perf_counter()
    engine = agent.engine
    load_seconds = time.perf_counter() - began
    speed = measure_speed(engine, refresh=True)  # this machine, now: a speed cached on a busy machine would mislead
    reach = effective_context(engine)
    print(f"engine loaded in {load_seconds:.1f}s; {speed.describe()}; {reach.describe()}", file=sys.stderr)
    baseline_budget = Budget()  # what auto ran under before: no time limit

    facts = FACTS[: args.questions]
    text = document_of_tokens(args.tokens, engine.count_tokens, [f for f, *_ in facts])
    mid = Document(id="austen-32k.txt", text=text)
    mid_tokens = engine.count_tokens(text)
    rows: list[Row] = []
    print(f"document 1: {mid_tokens:,} tokens", file=sys.stderr)
    for _, question, value, kind in facts:
        rows.append(ask(agent, mid, question, value, None, "auto", mid.id, kind, "ours"))
        if not args.skip_baseline:
            rows.append(ask(agent, mid, question, value, baseline_budget, "map_reduce", mid.id, kind, "baseline"))

    big_text = document_of_chars(args.big_chars, [BIG_FACT[0]])
    big_path = Path(tempfile.mkdtemp(prefix="ctxagent-bench-big-")) / "austen-2mb.txt"
    big_path.write_text(big_text, encoding="utf-8")
    print(f"document 2: {len(big_text.encode()):,} bytes", file=sys.stderr)
    for i, question in enumerate(BIG_QUESTIONS):
        kind = "first question (indexes)" if i == 0 else "next question (cached index)"
        rows.append(ask(agent, str(big_path), question, BIG_FACT[1], None, "auto", big_path.name, kind, "ours"))
    if not args.skip_baseline:  # the old auto read everything with map_reduce; capped, it would run for hours
        rows.append(ask(agent, str(big_path), BIG_QUESTIONS[0], BIG_FACT[1], Budget(max_seconds=args.baseline_cap), "map_reduce", big_path.name, "first question (indexes)", "baseline"))
    shutil.rmtree(big_path.parent, ignore_errors=True)
    provenance = finish(provenance)
    write(rows, provenance, Path(args.out), {"speed": speed.model_dump(), "effective_context": asdict(reach), "engine_load_seconds": round(load_seconds, 2), "doc1_tokens": mid_tokens, "doc2_bytes": len(big_text.encode()), "baseline_cap": args.baseline_cap})


def summary(rows: list[Row]) -> list[dict]:
    def pick(system: str, doc_suffix: str, kind: str | None = None) -> list[Row]:
        return [r for r in rows if r.system == system and r.document.endswith(doc_suffix) and (kind is None or r.kind.startswith(kind))]

    out = []
    for label, doc, kind, target in (
        ("32K-token document: median s per question", "32k.txt", None, 60.0),
        ("2 MB document: first question (with indexing), s", "2mb.txt", "first", 90.0),
        ("2 MB document: next question, s", "2mb.txt", "next", 15.0),
    ):
        ours, base = pick("ours", doc, kind), pick("baseline", doc, kind)
        o = statistics.median(r.seconds for r in ours) if ours else None
        b = statistics.median(r.seconds for r in base) if base else None
        if kind == "next" and b is None:  # the baseline keeps no index: its next question costs what its first did
            base = pick("baseline", doc, "first")
            b = statistics.median(r.seconds for r in base) if base else None
        out.append({
            "measure": label, "target": target, "ours": o, "baseline": b,
            "speedup": round(b / o, 1) if o and b else None,
            "ours_right": f"{sum(r.correct for r in ours)}/{len(ours)}", "baseline_right": f"{sum(r.correct for r in base)}/{len(base)}" if base else "-",
            "baseline_partial": any(r.partial for r in base), "meets_target": o is not None and o <= target,
        })
    return out


def write(rows: list[Row], provenance: dict, out: Path, context: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = summary(rows)
    (out / "auto.json").write_text(json.dumps({"provenance": provenance, "context": context, "summary": table, "rows": [asdict(r) for r in rows]}, indent=1))
    fmt = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
    lines = [
        "# `auto` under the interactive time budget vs the old behaviour (embedded SmolLM2-135M)",
        "",
        markdown_line(provenance),
        "",
        f"Speed measured at the start: {context['speed']['prefill_tokens_per_second']:.0f} prefill / {context['speed']['decode_tokens_per_second']:.1f} decode tokens/s; "
        f"effective context {context['effective_context']['tokens']} tokens ({context['effective_context']['source']}). Baseline: map_reduce over everything, "
        f"no time limit (what `auto` chose before); on the 2 MB document stopped at {context['baseline_cap']:g} s.",
        "",
        "| measure | target | ours | baseline | speed-up | ours right | baseline right | meets target |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {t['measure']} | <= {t['target']:g} | {fmt(t['ours'])} | {fmt(t['baseline'])}{' (stopped)' if t['baseline_partial'] else ''} | {t['speedup'] or '-'}x | {t['ours_right']} | {t['baseline_right']} | {'yes' if t['meets_target'] else 'no'} |" for t in table),
        "",
        "| document | question | kind | system | recipe | seconds | right | partial | answer |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {r.document} | {r.question} | {r.kind} | {r.system} | {r.recipe} | {r.seconds:.1f} | {'yes' if r.correct else 'no'} | {'yes' if r.partial else ''} | {r.answer[:80].replace('|', '/').replace(chr(10), ' ')} |" for r in rows),
        "",
    ]
    note = shared_note(provenance.get("load_end") or [], provenance.get("machine", {}).get("cpus"))
    if note:
        lines += [note, ""]
    (out / "auto.md").write_text("\n".join(lines))
    plot(table, out / "auto.png")
    print("\n".join(lines))


def plot(table: list[dict], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    labels = ["32K doc\n(median / question)", "2 MB doc\nfirst question", "2 MB doc\nnext question"]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(table))
    ax.bar([x - 0.2 for x in xs], [t["baseline"] or 0 for t in table], width=0.4, label="before: map_reduce, no limit", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [t["ours"] or 0 for t in table], width=0.4, label="auto, 60 s budget", color="#3a7")
    ax.scatter([x + 0.2 for x in xs], [t["target"] for t in table], marker="_", s=600, color="red", label="target", zorder=3)
    ax.set_xticks(list(xs), labels[: len(table)])
    ax.set_ylabel("seconds (log)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("auto on real text, embedded SmolLM2-135M")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
