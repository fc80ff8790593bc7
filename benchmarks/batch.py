"""Questions per minute of `ctxagent batch`: cross-document batching vs one question at a time.

Both modes run the same job through the same code path and the same engine object;
only the concurrency differs (1 = one question at a time, so every engine call
holds one prompt; N = N questions in flight, their engine calls merged into one).
Two workloads, generated:

- `short`: one-fact documents of about 40 tokens, so every question is one `direct` call;
  prefill is cheap and decoding dominates, which is what batching amortises best.
- `long`: real text (the bundled Austen novels) of `--doc-tokens` tokens with one planted
  fact, asked through a multi-step recipe (`--recipe`, map_reduce by default) with the
  window capped at `--window`, so each question makes several engine calls over long
  prompts: the case where merging calls across documents has to earn its keep.

    python benchmarks/batch.py                         # short: 200 questions, concurrency 1 vs 16
    python benchmarks/batch.py --workload long --questions 32 --concurrency 1,4,16 --recipe map_reduce

Writes benchmarks/results/batch.{md,json,png}. Timings on a shared machine are noisy:
the modes take turns over slices of the job (--rounds) so both see the same load,
and the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provenance import finish, markdown_line, stamp  # noqa: E402  (benchmarks/ is on sys.path)
from plotting import pyplot  # noqa: E402  (benchmarks/ is on sys.path)

from ctxagent import batch  # noqa: E402
from ctxagent.engines import get_engine  # noqa: E402
from ctxagent.types import Budget  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
NAMES = ["Acme", "Borealis", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper", "Kestrel", "Lumen",
         "Meridian", "Nimbus", "Orchid", "Pioneer", "Quartz", "Redwood", "Summit", "Tundra"]  # fmt: skip
ATTRIBUTES = [
    ("revenue", lambda r: f"{r.randint(10, 99)}.{r.randint(1, 9)} million euros"),
    ("headcount", lambda r: f"{r.randint(20, 900)} people"),
    ("launch year", lambda r: str(r.randint(1990, 2024))),
    ("number of warehouses", lambda r: str(r.randint(2, 40))),
    ("main port", lambda r: r.choice(["Hamburg", "Rotterdam", "Osaka", "Antwerp", "Gdansk", "Valencia"])),
]


def make_job(folder: Path, n_questions: int, seed: int = 0) -> tuple[Path, Path, dict[str, str]]:
    """n_questions one-fact documents (one question each) as corpus.jsonl and questions.jsonl."""
    rng = random.Random(seed)
    corpus, questions, expected = folder / "corpus.jsonl", folder / "questions.jsonl", {}
    with corpus.open("w") as c, questions.open("w") as q:
        for i in range(n_questions):
            name = f"{rng.choice(NAMES)} {i}"
            attribute, value_of = ATTRIBUTES[i % len(ATTRIBUTES)]
            value = value_of(rng)
            text = f"{name} is a small company. The {attribute} of {name} is {value}. It has offices in two countries."
            c.write(json.dumps({"id": f"doc{i}", "text": text}) + "\n")
            q.write(json.dumps({"id": f"q{i}", "doc": f"doc{i}", "question": f"What is the {attribute} of {name}?"}) + "\n")
            expected[f"q{i}"] = value.split()[0]
    return corpus, questions, expected


def make_long_job(folder: Path, n_questions: int, doc_tokens: int, count_tokens, seed: int = 0) -> tuple[Path, Path, dict[str, str]]:
    """n_questions documents cut from real text, each ~doc_tokens long with one planted fact."""
    from ctxagent.evaluation.haystack import HAYSTACKS, haystack_text

    rng = random.Random(seed)
    paragraphs = [p for name in HAYSTACKS for p in haystack_text(name).split("\n\n") if p.strip()]
    corpus, questions, expected = folder / "corpus.jsonl", folder / "questions.jsonl", {}
    start = 0
    with corpus.open("w") as c, questions.open("w") as q:
        for i in range(n_questions):
            body, total = [], 0
            while total < doc_tokens:
                paragraph = paragraphs[start % len(paragraphs)]
                start += 1
                body.append(paragraph)
                total += count_tokens(paragraph)
            name = f"{rng.choice(NAMES)} {i}"
            attribute, value_of = ATTRIBUTES[i % len(ATTRIBUTES)]
            value = value_of(rng)
            body.insert(rng.randint(1, len(body) - 1), f"The {attribute} of {name} is {value}.")
            c.write(json.dumps({"id": f"doc{i}", "text": "\n\n".join(body)}) + "\n")
            q.write(json.dumps({"id": f"q{i}", "doc": f"doc{i}", "question": f"What is the {attribute} of {name}?"}) + "\n")
            expected[f"q{i}"] = value.split()[0]
    return corpus, questions, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated; 1 is the one-by-one baseline")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--rounds", type=int, default=4, help="slices of the job; every mode runs each slice in turn")
    parser.add_argument("--workload", choices=["short", "long"], default="short")
    parser.add_argument("--recipe", default=None, help="recipe for every question (default: auto for short, map_reduce for long)")
    parser.add_argument("--doc-tokens", type=int, default=4096, help="long workload: tokens per document")
    parser.add_argument("--window", type=int, default=1024, help="long workload: the engine's context window is capped to this")
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes (results say '<commit>-dirty')")
    args = parser.parse_args()
    provenance = stamp(args.allow_dirty)
    levels = [int(x) for x in args.concurrency.split(",")]
    options = {"context_window": args.window} if args.workload == "long" and args.engine == "hf" else {}
    engine = get_engine(args.engine, batch_size=max(levels), **options) if args.engine == "hf" else get_engine(args.engine)
    recipe = args.recipe or ("map_reduce" if args.workload == "long" else "auto")
    budget = Budget(max_new_tokens=args.max_new_tokens)
    totals = {level: {"seconds": 0.0, "answered": 0, "failed": 0, "engine_calls": 0, "loads": [], "round_seconds": []} for level in levels}
    answers: dict[int, dict[str, str]] = {level: {} for level in levels}
    with tempfile.TemporaryDirectory() as tmp:
        if args.workload == "long":
            corpus, questions, expected = make_long_job(Path(tmp), args.questions, args.doc_tokens, engine.count_tokens)
        else:
            corpus, questions, expected = make_job(Path(tmp), args.questions)
        lines = questions.read_text().splitlines(keepends=True)
        # Rounds alternate the modes over slices of the job, so both see the same machine load.
        size = -(-len(lines) // args.rounds)
        for r in range(args.rounds):
            part = Path(tmp) / f"questions-{r}.jsonl"
            part.write_text("".join(lines[r * size : (r + 1) * size]))
            for level in levels:
                out = Path(tmp) / f"out-{r}-{level}.jsonl"
                totals[level]["loads"].append(os.getloadavg()[0])
                began = time.perf_counter()
                summary = batch.run(corpus, part, out, engine=engine, budget=budget, recipe=recipe, concurrency=level, progress=False)
                elapsed = time.perf_counter() - began
                t = totals[level]
                t["seconds"] += elapsed
                t["round_seconds"].append(elapsed)
                t["answered"] += summary.answered
                t["failed"] += summary.failed
                t["engine_calls"] += summary.engine_calls or 0
                t["loads"].append(os.getloadavg()[0])
                answers[level].update({k: r.text or "" for k, r in batch.read_results(out).items()})
                print(f"round {r + 1}/{args.rounds} concurrency {level}: {summary.answered} in {elapsed:.1f} s", flush=True)
    rows = []
    for level in levels:
        t = totals[level]
        rows.append({
            "mode": "one-by-one" if level == 1 else f"batched x{level}",
            "concurrency": level,
            "questions": t["answered"],
            "failed": t["failed"],
            "seconds": round(t["seconds"], 1),
            "questions_per_minute": round(60 * t["answered"] / t["seconds"], 2),
            "engine_calls": t["engine_calls"],
            "correct": sum(expected[k] in v for k, v in answers[level].items()),
            "mean_load": round(sum(t["loads"]) / len(t["loads"]), 1),
        })  # fmt: skip
    for row in rows:
        row["rounds_seconds"] = [round(x, 1) for x in totals[row["concurrency"]]["round_seconds"]]
    base = rows[0]
    for row in rows:
        row["speedup"] = round(row["questions_per_minute"] / base["questions_per_minute"], 2)
        row["same_answers_as_first"] = sum(answers[row["concurrency"]][k] == answers[base["concurrency"]][k] for k in answers[base["concurrency"]])
    machine = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "engine": f"{args.engine} {getattr(engine, 'model_name', '')}",
        "workload": args.workload,
        "recipe": recipe,
        "questions": args.questions,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if args.workload == "long":
        machine |= {"doc_tokens": args.doc_tokens, "window": args.window}
    write_results(rows, machine, finish(provenance))


def write_results(rows: list[dict], machine: dict, provenance: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "batch" if machine["workload"] == "short" else f"batch_{machine['workload']}_{machine['recipe']}"
    (RESULTS / f"{name}.json").write_text(json.dumps({"provenance": provenance, "machine": machine, "rows": rows}, indent=2) + "\n")
    cols = ["mode", "questions", "seconds", "rounds_seconds", "questions_per_minute", "speedup", "engine_calls", "correct", "same_answers_as_first", "mean_load"]
    lines = [
        f"# ctxagent batch: cross-document batching vs one-by-one ({machine['questions']} questions, {machine['workload']} documents, {machine['recipe']})",
        "",
        markdown_line(provenance),
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    lines += ["", "mean_load: 1-minute load average around each mode's rounds; above the core count means other work shared the CPU."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar([r["mode"] for r in rows], [r["questions_per_minute"] for r in rows], color=["#999"] + ["#2a7"] * (len(rows) - 1))
    for i, r in enumerate(rows):
        ax.text(i, r["questions_per_minute"], f"x{r['speedup']}", ha="center", va="bottom")
    ax.set_ylim(0, 1.2 * max(r["questions_per_minute"] for r in rows))
    ax.set_ylabel("questions per minute")
    ax.set_title(f"ctxagent batch, {machine['questions']} {machine['workload']} questions ({machine['recipe']}), {machine['cpus']} CPUs", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)


if __name__ == "__main__":
    main()
