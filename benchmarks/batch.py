"""Questions per minute of `ctxagent batch`: cross-document batching vs one question at a time.

Both modes run the same job through the same code path and the same engine object;
only the concurrency differs (1 = one question at a time, so every engine call
holds one prompt; N = N questions in flight, their engine calls merged into one).
The corpus is generated: short one-fact documents (about 40 tokens each) so that
200 questions finish in a few minutes on two CPU cores; prefill is then cheap and
the cost is dominated by decoding, which is exactly what batching amortises.

    python benchmarks/batch.py                         # 200 questions, concurrency 1 vs 16
    python benchmarks/batch.py --questions 50 --concurrency 1,4,16

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated; 1 is the one-by-one baseline")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--rounds", type=int, default=4, help="slices of the job; every mode runs each slice in turn")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    engine = get_engine(args.engine, batch_size=max(levels)) if args.engine == "hf" else get_engine(args.engine)
    budget = Budget(max_new_tokens=args.max_new_tokens)
    totals = {level: {"seconds": 0.0, "answered": 0, "failed": 0, "engine_calls": 0, "loads": [], "round_seconds": []} for level in levels}
    answers: dict[int, dict[str, str]] = {level: {} for level in levels}
    with tempfile.TemporaryDirectory() as tmp:
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
                summary = batch.run(corpus, part, out, engine=engine, budget=budget, concurrency=level, progress=False)
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
        "questions": args.questions,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    write_results(rows, machine)


def write_results(rows: list[dict], machine: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    cols = ["mode", "questions", "seconds", "rounds_seconds", "questions_per_minute", "speedup", "engine_calls", "correct", "same_answers_as_first", "mean_load"]
    lines = [
        f"# ctxagent batch: cross-document batching vs one-by-one ({machine['questions']} questions)",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    lines += ["", "mean_load: 1-minute load average around each mode's rounds; above the core count means other work shared the CPU."]
    (RESULTS / "batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar([r["mode"] for r in rows], [r["questions_per_minute"] for r in rows], color=["#999"] + ["#2a7"] * (len(rows) - 1))
    for i, r in enumerate(rows):
        ax.text(i, r["questions_per_minute"], f"x{r['speedup']}", ha="center", va="bottom")
    ax.set_ylim(0, 1.2 * max(r["questions_per_minute"] for r in rows))
    ax.set_ylabel("questions per minute")
    ax.set_title(f"ctxagent batch, {machine['questions']} questions, {machine['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(RESULTS / "batch.png", dpi=120)


if __name__ == "__main__":
    main()
