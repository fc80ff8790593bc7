"""Which parts of evidence selection help: evidence recall of recipe plans, without the answer step.

    python benchmarks/evidence_selection.py                          # published run (~15 min idle, 2 cores)
    python benchmarks/evidence_selection.py --depths 0.5 --allow-dirty   # smoke test

The eval harness's harder needle kinds (`niah_paraphrase`, `niah_latent`, `two_hop`,
`arithmetic`; ctxagent/evaluation/tasks.py) at `--length` tokens of the embedded model.
Each variant runs a recipe's real plan (retrieval, sentence scoring, the engine's
log-prob vote, chain hops) with the embedded engine; only the final answer generation is
replaced by a recorder of the facts it would be shown (the best 5), so the table isolates
evidence selection and runs in seconds per question. Recall: every needle of the task
(both hops, both operands) lies inside a recorded fact. All variants read the same tasks
in the same process; `default` is what ships, each other row changes one thing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plotting import pyplot  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("niah_paraphrase", "niah_latent", "two_hop", "arithmetic")


def variants():
    from ctxagent.recipes.evidence import EvidenceSelector

    return {
        "retrieve_then_reason: default": ("retrieve_then_reason", {}, {}),
        "retrieve_then_reason: no paraphrase weighting": ("retrieve_then_reason", {"selector": EvidenceSelector(paraphrase_lexical_weight=1.0)}, {}),
        "retrieve_then_reason: + pseudo-relevance feedback": ("retrieve_then_reason", {"feedback": True}, {}),
        "retrieve_then_reason: no engine vote": ("retrieve_then_reason", {"selector": EvidenceSelector(model_weight=0)}, {}),
        "retrieve_then_reason: no hops": ("retrieve_then_reason", {}, {"max_hops": 0}),
        "retrieve_then_reason: bm25 retriever": ("retrieve_then_reason", {"retriever": "bm25"}, {}),
        "map_reduce: default": ("map_reduce", {}, {}),
        "map_reduce: no hops": ("map_reduce", {}, {"max_hops": 0}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--depths", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=None, help="names of variants to run (default: all)")
    parser.add_argument("--allow-dirty", action="store_true")
    args = parser.parse_args()

    from provenance import finish, markdown_line, stamp

    block = stamp(args.allow_dirty)
    import importlib

    from ctxagent.engines import get_engine
    from ctxagent.evaluation.tasks import generate_tasks
    from ctxagent.recipes import get_recipe
    from ctxagent.recipes.base import run_recipe
    from ctxagent.recipes.context import RunContext
    from ctxagent.types import Budget, Document

    engine = get_engine("hf", context_window=args.window)
    tasks = generate_tasks(engine.count_tokens, kinds=args.kinds, lengths=[args.length], depths=args.depths, samples=args.samples, seed=args.seed)
    shown: list[list[tuple[int, int]]] = []

    def record(ctx, recipe, documents, question, facts, notes=(), max_facts=5):
        shown.append([(f.citation.start, f.citation.end) for f in facts.best(max_facts)])
        return ctx.answer("", recipe=recipe)

    for module in ("retrieve_then_reason", "map_reduce"):
        importlib.import_module(f"ctxagent.recipes.{module}").answer_from_facts = record

    chosen = {name: v for name, v in variants().items() if args.variants is None or name in args.variants}
    rows = []
    for name, (recipe, options, budget) in chosen.items():
        for task in tasks:
            shown.clear()
            doc = Document(id=task.id, text=task.context)
            ctx = RunContext(engine=engine, budget=Budget(max_new_tokens=48, **budget))
            began = time.perf_counter()
            run_recipe(get_recipe(recipe, **options), ctx, [doc], task.question)
            facts = shown[-1] if shown else []
            hit = all(any(s <= n.start and n.start + len(n.text) <= e for s, e in facts) for n in task.needles)
            rows.append({"variant": name, "task": task.id, "kind": task.kind, "recall": float(hit), "seconds": round(time.perf_counter() - began, 2), "engine_calls": ctx.usage.engine_calls})
            print(json.dumps(rows[-1]), flush=True)
    finish(block)

    kinds = [*args.kinds, "all"]
    lines = [
        "# Evidence selection: what each part adds",
        "",
        f"Evidence recall (every needle inside a fact the answer step would be shown) on the eval's harder kinds at {args.length} tokens "
        f"({args.length / args.window:g}x the {args.window}-token window), {len(tasks) // len(args.kinds)} task(s) per kind, embedded engine for the log-prob vote; "
        "no answer is generated. Each row changes one thing from `default`.",
        "",
        "| variant | " + " | ".join(kinds) + " | seconds per question |",
        "|---" * (len(kinds) + 2) + "|",
    ]
    for name in chosen:
        mine = [r for r in rows if r["variant"] == name]
        cells = []
        for kind in kinds:
            sel = [r["recall"] for r in mine if kind == "all" or r["kind"] == kind]
            cells.append(f"{sum(sel) / len(sel):.2f} ({int(sum(sel))}/{len(sel)})" if sel else "-")
        seconds = sum(r["seconds"] for r in mine) / max(1, len(mine))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    lines += ["", markdown_line(block), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "evidence_selection.md").write_text("\n".join(lines))
    (RESULTS / "evidence_selection.json").write_text(json.dumps({"provenance": block, "rows": rows}, indent=1))
    _plot(rows, list(chosen), kinds)
    print("\n".join(lines))


def _plot(rows: list[dict], names: list[str], kinds: list[str]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        values = []
        for kind in kinds:
            sel = [r["recall"] for r in rows if r["variant"] == name and (kind == "all" or r["kind"] == kind)]
            values.append(sum(sel) / len(sel) if sel else 0.0)
        ax.bar([i + (j - len(names) / 2) * width for i in range(len(kinds))], values, width=width, label=name)
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("evidence recall")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(RESULTS / "evidence_selection.png", dpi=120)


if __name__ == "__main__":
    main()
