"""Recipes vs the `direct` baseline on the same generated needle tasks, across document lengths.

Each task hides one key-value sentence ("The access code for the green cellar is 5203.")
at a chosen depth in real long text (Jane Austen's Persuasion, public domain, the
haystack bundled with ctxagent.evaluation) and asks for the value. Every recipe
answers every task with the same engine, in one process, side by side; a task counts
as correct when the answer contains the value. Per recipe and length we report accuracy, engine calls, tokens and
seconds, and write a markdown table, JSON rows and a PNG plot under benchmarks/results/.

    python benchmarks/recipes.py                       # embedded SmolLM2, window 1024, 2x/5x/10x, 5 depths
    python benchmarks/recipes.py --multiples 5 10 20 --depths 0.1 0.5 0.9

Each (length, depth) cell is one task with its own needle, so a length has as many tasks as
depths (5 by default); the table gives accuracy as k/n with its 95% interval and the spread
(min-max) of seconds and tokens across those tasks, since one task per cell is a smoke test.

The memory tree is built fresh for every document (its cost is counted in the first and
only question asked of it); on a reused document it would be nearly free.
Timings on a shared CPU are noisy: the machine and its load are recorded with the results.
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
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provenance import finish, markdown_line, stamp, wilson  # noqa: E402  (benchmarks/ is on sys.path)
from plotting import pyplot  # noqa: E402  (benchmarks/ is on sys.path)

RESULTS = ROOT / "benchmarks" / "results"
COLOURS = ["green", "silver", "crimson", "amber", "violet", "copper", "ivory", "scarlet"]
PLACES = ["cellar", "boathouse", "library", "stable", "chapel", "orchard gate", "tower", "greenhouse"]
RECIPES = ["direct", "map_reduce", "recurrent", "memory_tree", "memory_tree:collapsed", "retrieve_then_reason", "agentic", "auto"]


@dataclass
class Task:
    id: str
    multiple: float
    depth: float
    text: str
    question: str
    value: str


@dataclass
class Row:
    task: str
    recipe: str
    multiple: float
    depth: float
    doc_tokens: int
    correct: bool
    partial: bool
    answer: str
    engine_calls: int
    tokens: int
    seconds: float
    citations_exact: bool


def make_tasks(engine, multiples: list[float], depths: list[float], window: int, seed: int) -> list[Task]:
    """One task per (length, depth): the haystack's first paragraphs up to the length, one needle."""
    rng = random.Random(seed)
    from ctxagent.evaluation.haystack import haystack_text

    paragraphs = haystack_text("persuasion").split("\n\n")
    sizes = [engine.count_tokens(p) + 1 for p in paragraphs]
    tasks = []
    for multiple in multiples:
        target = int(multiple * window)
        if sum(sizes) < target:
            raise SystemExit(f"the haystack has {sum(sizes)} tokens, fewer than {multiple}x{window}; lower --multiples")
        n, total = 0, 0
        while total < target:
            total += sizes[n]
            n += 1
        for depth in depths:
            colour, place, value = rng.choice(COLOURS), rng.choice(PLACES), str(rng.randint(1000, 9999))
            needle = f"The access code for the {colour} {place} is {value}."
            body = paragraphs[:n]
            body.insert(int(depth * n), needle)
            question = f"What is the access code for the {colour} {place}?"
            tasks.append(Task(f"x{multiple:g}-d{depth:g}", multiple, depth, "\n\n".join(body), question, value))
    return tasks


def run_one(engine, task: Task, spec: str):
    from ctxagent.citations import verify_citations
    from ctxagent.recipes import get_recipe
    from ctxagent.recipes.base import run_recipe
    from ctxagent.recipes.context import RunContext
    from ctxagent.types import Budget, Document

    name, _, mode = spec.partition(":")
    options = {"mode": mode} if mode else {}
    doc = Document(id=task.id, text=task.text)
    ctx = RunContext(engine=engine, budget=Budget(max_new_tokens=48))
    began = time.perf_counter()
    answer = run_recipe(get_recipe(name, **options), ctx, [doc], task.question)
    seconds = time.perf_counter() - began
    return answer, seconds, not verify_citations(answer.citations, [doc])


def summarise(rows: list[Row]) -> list[dict]:
    table = []
    for recipe in dict.fromkeys(r.recipe for r in rows):
        for multiple in sorted({r.multiple for r in rows}):
            group = [r for r in rows if r.recipe == recipe and r.multiple == multiple]
            if not group:
                continue
            n = len(group)
            correct = sum(r.correct for r in group)
            table.append(
                {
                    "recipe": recipe,
                    "multiple": multiple,
                    "doc_tokens": round(sum(r.doc_tokens for r in group) / n),
                    "tasks": n,
                    "correct": correct,
                    "accuracy": correct / n,
                    "accuracy_95": [round(x, 3) for x in wilson(correct, n)],
                    "engine_calls": sum(r.engine_calls for r in group) / n,
                    "tokens": sum(r.tokens for r in group) / n,
                    "tokens_range": [min(r.tokens for r in group), max(r.tokens for r in group)],
                    "seconds": sum(r.seconds for r in group) / n,
                    "seconds_range": [min(r.seconds for r in group), max(r.seconds for r in group)],
                    "citations_exact": all(r.citations_exact for r in group),
                }
            )
    return table


def markdown(table: list[dict], machine: dict) -> str:
    lines = [
        "# Recipes vs direct on needle tasks (Persuasion haystack)",
        "",
        f"Engine: {machine['engine']} (window {machine['window']}); machine: {machine['cpu']}, {machine['cores']} cores, "
        f"load average at start {machine['load_start']}, at end {machine['load_end']}.",
        "",
        *([markdown_line(machine["provenance"]), ""] if "provenance" in machine else ["No provenance recorded: this run predates commit stamping.", ""]),
        "Each length has one task per needle depth, each with its own needle; accuracy is correct/tasks with a 95% Wilson "
        "interval, and the seconds and tokens columns give the mean and, in brackets, the range across those tasks.",
        "",
        "Recipes run in the order listed on the same document; `memory_tree:collapsed` and `auto` therefore find the memory tree "
        "that `memory_tree` built already cached (auto then navigates it), as they would for any second question about a document. "
        "`tokens` counts prompt + completion tokens over all engine calls, the tree build included where it happened.",
        "",
        "| recipe | length (x window) | doc tokens | tasks | accuracy (95% CI) | engine calls | tokens (range) | seconds (range) | tokens vs direct | citations exact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    direct = {r["multiple"]: r for r in table if r["recipe"] == "direct"}
    for r in table:
        ratio = f"{r['tokens'] / direct[r['multiple']]['tokens']:.1f}x" if r["multiple"] in direct and direct[r["multiple"]]["tokens"] else "-"
        lines.append(
            f"| {r['recipe']} | {r['multiple']:g} | {r['doc_tokens']} | {r['tasks']} | {_accuracy(r)} | {r['engine_calls']:.1f} | "
            f"{r['tokens']:.0f} {_range(r, 'tokens_range', '{:.0f}')} | {r['seconds']:.1f} {_range(r, 'seconds_range', '{:.1f}')} | {ratio} | {'yes' if r['citations_exact'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def _accuracy(row: dict) -> str:
    if "accuracy_95" not in row:
        return f"{row['accuracy']:.0%}"
    lo, hi = row["accuracy_95"]
    return f"{row['correct']}/{row['tasks']} ({lo:.0%}-{hi:.0%})"


def _range(row: dict, key: str, fmt: str) -> str:
    return f"({fmt.format(row[key][0])}-{fmt.format(row[key][1])})" if key in row else ""


def plot(table: list[dict], path: Path, machine: dict) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for recipe in dict.fromkeys(r["recipe"] for r in table):
        rs = [r for r in table if r["recipe"] == recipe]
        xs = [r["multiple"] for r in rs]
        style = "--" if recipe == "direct" else "-"
        axes[0].plot(xs, [r["accuracy"] for r in rs], style, marker="o", label=recipe)
        axes[1].plot(xs, [r["tokens"] for r in rs], style, marker="o", label=recipe)
        axes[2].plot(xs, [r["seconds"] for r in rs], style, marker="o", label=recipe)
    for ax, title in zip(axes, ["accuracy (answer contains the value)", "tokens per question", "seconds per question"]):
        ax.set_xlabel(f"document length (x {machine['window']}-token window)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"ctxagent recipes on needle tasks — {machine['engine']}, {machine['cpu']} ({machine['cores']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=int, default=1024, help="context window the engine is capped to")
    parser.add_argument("--multiples", type=float, nargs="+", default=[2, 5, 10], help="document lengths, in windows")
    parser.add_argument("--depths", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9], help="needle depths (0 = start); one task, with its own needle, per depth")
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, nargs="+", help="only redraw the table and plot from recipes.json files of earlier runs (merged)")
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes (the results say '<commit>-dirty')")
    args = parser.parse_args()
    if args.render:
        saved = [json.loads(path.read_text()) for path in args.render]
        # A later file's row for the same task and recipe replaces an earlier one (a rerun after a fix).
        rows = list({(row["task"], row["recipe"]): row for run in saved for row in run["rows"]}.values())
        machine = dict(saved[0]["machine"])
        if len(saved) > 1:  # several runs: report the range of loads seen
            machine["load_start"] = [run["machine"]["load_start"] for run in saved]
            machine["load_end"] = [run["machine"]["load_end"] for run in saved]
        write_results(summarise([Row(**r) for r in rows]), rows, machine, args.out)
        return

    provenance = stamp(args.allow_dirty)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm import tqdm

    from ctxagent.engines import get_engine

    engine = get_engine("hf", context_window=args.window)
    machine = {
        "engine": f"hf {getattr(engine, 'model_name', '')}",
        "window": args.window,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_start": [round(x, 1) for x in os.getloadavg()],
        "provenance": provenance,
    }
    tasks = make_tasks(engine, args.multiples, args.depths, args.window, args.seed)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as cache:
        # Fresh trees and indexes, so their cost is counted (the engine is loaded already).
        os.environ["CTXAGENT_CACHE"] = cache
        for task in tqdm(tasks, desc="tasks"):
            doc_tokens = engine.count_tokens(task.text)
            for spec in args.recipes:
                answer, seconds, exact = run_one(engine, task, spec)
                rows.append(
                    Row(task.id, spec, task.multiple, task.depth, doc_tokens, task.value in answer.text, answer.partial,
                        answer.text[:120], answer.usage.engine_calls, answer.usage.total_tokens, round(seconds, 2), exact)
                )
                tqdm.write(f"{task.id:>12} {spec:<22} {'OK ' if rows[-1].correct else 'BAD'} calls={rows[-1].engine_calls} tokens={rows[-1].tokens} {seconds:.1f}s  {answer.text[:60]!r}")
                # Written after every run, so a long benchmark stopped early still leaves its results.
                machine["load_end"] = [round(x, 1) for x in os.getloadavg()]
                finish(provenance)
                write_results(summarise(rows), [asdict(r) for r in rows], machine, args.out, quiet=True)
    print(markdown(summarise(rows), machine))


def write_results(table: list[dict], rows: list[dict], machine: dict, out: Path, quiet: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps({"machine": machine, "summary": table, "rows": rows}, indent=1))
    text = markdown(table, machine)
    (out / "recipes.md").write_text(text)
    plot(table, out / "recipes.png", machine)
    if not quiet:
        print(text)


if __name__ == "__main__":
    main()
