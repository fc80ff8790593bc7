"""Questions per minute through `ctxagent serve` vs in-process `ctxagent batch`, same questions, same engine.

Both modes answer the same generated job (the one-fact documents of benchmarks/batch.py) with the
same recipe and the same engine object: `batch` runs N questions in threads sharing a
BatchingEngine; `serve` starts the OpenAI-compatible server in this process (uvicorn on
127.0.0.1, a free port) over that engine, and N client threads send the same questions with the
official `openai` client, one request each (document in a system message). So the ratio is what
HTTP, JSON and the server's scheduling cost (or save) against the in-process batch runner.

    python benchmarks/serve.py                                   # 96 questions, 16 in flight, 4 rounds
    python benchmarks/serve.py --questions 8 --concurrency 4 --rounds 1 --allow-dirty   # smoke test

Writes benchmarks/results/serve.{md,json,png}. The modes take turns over slices of the job
(--rounds), so both see the same machine load, after an untimed warm-up of both paths.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from benchmarks.plotting import pyplot  # noqa: E402
from ctxagent import batch  # noqa: E402
from ctxagent.engines import get_engine  # noqa: E402
from ctxagent.types import Budget  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _make_job():
    """benchmarks/batch.py's generator, so both benchmarks ask the same kind of question."""
    spec = importlib.util.spec_from_file_location("batch_benchmark", ROOT / "benchmarks" / "batch.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.make_job


def run_batch(corpus: Path, questions: Path, out: Path, engine, budget: Budget, concurrency: int, recipe: str) -> dict[str, str]:
    summary = batch.run(corpus, questions, out, engine=engine, budget=budget, concurrency=concurrency, recipe=recipe, progress=False)
    assert summary.failed == 0, f"{summary.failed} batch questions failed"
    return {k: r.text or "" for k, r in batch.read_results(out).items()}


def run_serve(client, docs: dict[str, str], questions: list[dict], concurrency: int, recipe: str, max_new_tokens: int) -> dict[str, str]:
    def ask(q: dict) -> tuple[str, str]:
        response = client.chat.completions.create(
            model=f"ctxagent/{recipe}",
            messages=[{"role": "system", "content": docs[q["doc"]]}, {"role": "user", "content": q["question"]}],
            max_tokens=max_new_tokens,
        )
        return q["id"], response.choices[0].message.content or ""

    with ThreadPoolExecutor(concurrency) as pool:
        return dict(pool.map(ask, questions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=16, help="questions in flight in both modes")
    parser.add_argument("--recipe", default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--rounds", type=int, default=4, help="slices of the job; both modes run each slice in turn")
    parser.add_argument("--allow-dirty", action="store_true", help="record results from a tree with uncommitted changes")
    args = parser.parse_args()
    block = provenance.stamp(args.allow_dirty)
    import openai

    from ctxagent.server import ServerSettings, running_server

    engine = get_engine(args.engine, batch_size=args.concurrency) if args.engine == "hf" else get_engine(args.engine)
    budget = Budget(max_new_tokens=args.max_new_tokens)
    modes = ["batch", "serve"]
    totals = {m: {"seconds": 0.0, "answered": 0, "round_seconds": [], "loads": []} for m in modes}
    answers: dict[str, dict[str, str]] = {m: {} for m in modes}
    settings = ServerSettings(budget=budget, max_concurrent=max(64, args.concurrency))
    with tempfile.TemporaryDirectory() as tmp, running_server(engine, settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600)
        corpus, questions_file, expected = _make_job()(Path(tmp), args.questions)
        docs = {d["id"]: d["text"] for d in map(json.loads, corpus.read_text().splitlines())}
        questions = [json.loads(line) for line in questions_file.read_text().splitlines()]
        # Untimed warm-up of both paths (first forward passes, the recipe's imports, HTTP connections).
        warm = questions[: min(len(questions), args.concurrency)]
        warm_file = Path(tmp) / "warmup.jsonl"
        warm_file.write_text("".join(json.dumps(q) + "\n" for q in warm))
        run_batch(corpus, warm_file, Path(tmp) / "warmup-out.jsonl", engine, budget, args.concurrency, args.recipe)
        run_serve(client, docs, warm, args.concurrency, args.recipe, args.max_new_tokens)
        size = -(-len(questions) // args.rounds)
        for r in range(args.rounds):
            part = questions[r * size : (r + 1) * size]
            part_file = Path(tmp) / f"questions-{r}.jsonl"
            part_file.write_text("".join(json.dumps(q) + "\n" for q in part))
            for mode in modes:
                totals[mode]["loads"].append(os.getloadavg()[0])
                began = time.perf_counter()
                if mode == "batch":
                    got = run_batch(corpus, part_file, Path(tmp) / f"out-{r}.jsonl", engine, budget, args.concurrency, args.recipe)
                else:
                    got = run_serve(client, docs, part, args.concurrency, args.recipe, args.max_new_tokens)
                elapsed = time.perf_counter() - began
                t = totals[mode]
                t["seconds"] += elapsed
                t["round_seconds"].append(round(elapsed, 1))
                t["answered"] += len(got)
                answers[mode].update(got)
                print(f"round {r + 1}/{args.rounds} {mode}: {len(got)} in {elapsed:.1f} s", flush=True)
    rows = []
    for mode in modes:
        t = totals[mode]
        rows.append({
            "mode": "ctxagent batch (in process)" if mode == "batch" else "ctxagent serve (HTTP, openai client)",
            "questions": t["answered"],
            "seconds": round(t["seconds"], 1),
            "rounds_seconds": t["round_seconds"],
            "questions_per_minute": round(60 * t["answered"] / t["seconds"], 2),
            "correct": sum(expected[k] in v for k, v in answers[mode].items()),
            "same_answers_as_batch": sum(answers[mode].get(k) == v for k, v in answers["batch"].items()),
            "mean_load": round(sum(t["loads"]) / len(t["loads"]), 1),
        })  # fmt: skip
    for row in rows:
        row["ratio_to_batch"] = round(row["questions_per_minute"] / rows[0]["questions_per_minute"], 2)
    setup = {
        "engine": f"{args.engine} {getattr(engine, 'model_name', '')}",
        "recipe": args.recipe,
        "questions": args.questions,
        "concurrency": args.concurrency,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
    }
    write_results(rows, setup, provenance.finish(block))


def write_results(rows: list[dict], setup: dict, block: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps({"provenance": block, "setup": setup, "rows": rows}, indent=2) + "\n")
    cols = ["mode", "questions", "seconds", "rounds_seconds", "questions_per_minute", "ratio_to_batch", "correct", "same_answers_as_batch", "mean_load"]
    lines = [
        f"# ctxagent serve vs ctxagent batch: {setup['questions']} questions, {setup['concurrency']} in flight",
        "",
        "Setup: " + ", ".join(f"{k} {v}" for k, v in setup.items()),
        "",
        provenance.markdown_line(block),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    note = provenance.shared_note(block.get("load_start", []), block.get("machine", {}).get("cpus"))
    lines += ["", "ratio_to_batch: questions per minute over batch's, measured in the same run, the modes alternating by round."]
    if note:
        lines += ["", note]
    (RESULTS / "serve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.bar(["batch\n(in process)", "serve\n(HTTP)"], [r["questions_per_minute"] for r in rows], color=["#999", "#2a7"])
    for i, r in enumerate(rows):
        ax.text(i, r["questions_per_minute"], f"x{r['ratio_to_batch']}", ha="center", va="bottom")
    ax.set_ylim(0, 1.2 * max(r["questions_per_minute"] for r in rows))
    ax.set_ylabel("questions per minute")
    ax.set_title(f"{setup['questions']} questions, {setup['concurrency']} in flight, {setup['engine']}")
    fig.tight_layout()
    fig.savefig(RESULTS / "serve.png", dpi=120)


if __name__ == "__main__":
    main()
