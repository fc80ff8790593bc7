"""Evidence recall per recipe: are the gold sentences among the facts handed to the answer step?

    python benchmarks/evidence.py                                   # published run
    python benchmarks/evidence.py --recipes retrieve_then_reason --per-kind 1 --allow-dirty   # smoke test

Probes: needles planted in real text (the bundled Austen excerpts), in documents of
`--length` tokens of the embedded model (default 4096: 4x its window capped at 1024):

- paraphrased: one sentence, and a question sharing no content word with it (checked);
- two_hop: sentence A names someone, sentence B (elsewhere, either order) says what the
  question asks about them; the question names neither B's words nor the person;
- arithmetic: two sentences whose numbers the answer adds up.

Evidence recall is the share of questions where *every* gold sentence lies inside a
fact passed to the answer step (captured where the answer prompt is built,
`reading.facts_that_fit`, so the same measurement works on older commits). `answered`
is whether the expected answer string is in the answer (the embedded model is weak;
read it as a side note). The baseline rows run the same probes on `--baseline-ref`
(default: the commit before evidence selection by scores, where every recipe asked
the model to copy the answering sentence), checked out with `git archive` into a
temporary folder and run in a subprocess, in the same run as ours.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plotting import pyplot  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECIPES = ("retrieve_then_reason", "map_reduce", "recurrent", "agentic", "memory_tree")
BASELINE_REF = "bbec80f"  # last commit of main before evidence selection by scores

# (kind, needles, question, expected answer). Needles are planted in this order unless `swap`.
PROBES: list[tuple[str, list[str], str, str]] = [
    ("paraphrased", ["The groundskeeper concealed a silver locket beneath the ancient elm."], "What did the gardener hide under the old tree?", "locket"),
    ("paraphrased", ["Lieutenant Marsh was terrified of thunderstorms all his life."], "Which weather frightened the naval officer?", "thunderstorm"),
    ("paraphrased", ["The vicar's favourite supper was roasted pheasant with chestnuts."], "What meal did the clergyman like best in the evening?", "pheasant"),
    ("two_hop", ["The stolen emerald was hidden in the cottage of Captain Thornbury.", "Captain Thornbury lives in the village of Wrexley."], "In which village was the stolen emerald hidden?", "Wrexley"),
    ("two_hop", ["Doctor Pellingham was born in the port of Falmouth.", "The prize-winning mare belongs to Doctor Pellingham."], "In which port was the owner of the prize-winning mare born?", "Falmouth"),
    ("two_hop", ["Miss Caroline Ashdown keeps a grey parrot called Rufus.", "The anonymous letter was written by Miss Caroline Ashdown."], "What bird does the author of the anonymous letter keep?", "parrot"),
    ("arithmetic", ["Mr. Fenwick keeps 14 horses in his stables.", "Mrs. Fenwick keeps 9 horses at the farm."], "How many horses do Mr. and Mrs. Fenwick keep in total?", "23"),
    ("arithmetic", ["The northern orchard yields 320 bushels of apples each autumn.", "The southern orchard yields 180 bushels of apples each autumn."], "How many bushels of apples do the northern and southern orchards yield together each autumn?", "500"),
    ("arithmetic", ["Colonel Ridley paid 45 pounds for the carriage.", "Colonel Ridley paid 30 pounds for the harness."], "How much did Colonel Ridley pay for the carriage and the harness altogether?", "75"),
]


def build_probe(index: int, count_tokens, length: int, seed: int) -> dict:
    """One document of about `length` tokens of Austen, the probe's needles planted as paragraphs."""
    from ctxagent.evaluation.haystack import HAYSTACKS, haystack_text

    kind, needles, question, expected = PROBES[index]
    rng = random.Random(seed * 1000 + index)
    paragraphs = [p for p in haystack_text(HAYSTACKS[index % len(HAYSTACKS)]).split("\n\n") if p.strip()]
    start = rng.randrange(len(paragraphs) // 2)
    body, tokens = [], sum(count_tokens(n) for n in needles)
    for p in paragraphs[start:]:
        n = count_tokens(p) + 1
        if tokens + n > length:
            break
        body.append(p)
        tokens += n
    depths = sorted(rng.uniform(0.1, 0.9) for _ in needles)
    for offset, (needle, depth) in enumerate(zip(needles, depths)):
        body.insert(int(depth * len(body)) + offset, needle)
    text = "\n\n".join(body)
    gold = [[text.index(n), text.index(n) + len(n)] for n in needles]
    return {"id": index, "kind": kind, "question": question, "expected": expected, "text": text, "gold": gold, "tokens": count_tokens(text)}


def worker(args: argparse.Namespace) -> None:
    """Run the probes with whatever `ctxagent` is importable; one JSON line per (recipe, probe)."""
    import ctxagent.recipes.reading as reading
    from ctxagent.engines import get_engine
    from ctxagent.recipes import get_recipe
    from ctxagent.recipes.base import run_recipe
    from ctxagent.recipes.context import RunContext
    from ctxagent.types import Budget, Document

    engine = get_engine("hf", context_window=args.window)
    offered: list[list] = []
    original = reading.facts_that_fit

    def capture(ctx, facts, question, max_new):
        chosen = original(ctx, facts, question, max_new)
        offered.append([(f.citation.start, f.citation.end) for f in chosen])
        return chosen

    reading.facts_that_fit = capture
    probes = [build_probe(i, engine.count_tokens, args.length, args.seed) for i in range(len(PROBES))]
    per_kind: dict[str, int] = {}
    probes = [p for p in probes if per_kind.setdefault(p["kind"], 0) < args.per_kind and not per_kind.__setitem__(p["kind"], per_kind[p["kind"]] + 1)]
    for name in args.recipes:
        for probe in probes:
            offered.clear()
            doc = Document(id=f"probe{probe['id']}", text=probe["text"])
            ctx = RunContext(engine=engine, budget=Budget(max_new_tokens=48))
            began = time.perf_counter()
            answer = run_recipe(get_recipe(name), ctx, [doc], probe["question"])
            seconds = time.perf_counter() - began
            facts = offered[-1] if offered else []
            hit = all(any(s <= g0 and g1 <= e for s, e in facts) for g0, g1 in probe["gold"])
            row = {
                "recipe": name, "probe": probe["id"], "kind": probe["kind"], "tokens": probe["tokens"],
                "evidence_recall": float(hit), "answered": float(probe["expected"].lower() in answer.text.lower()),
                "facts": len(facts), "seconds": round(seconds, 2), "engine_calls": answer.usage.engine_calls, "answer": answer.text[:160],
            }
            print(json.dumps(row), flush=True)


def run_worker(tree: Path, args: argparse.Namespace) -> list[dict]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--length", str(args.length), "--window", str(args.window),
               "--seed", str(args.seed), "--per-kind", str(args.per_kind), "--recipes", *args.recipes]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, env=env, cwd=tree, stdout=subprocess.PIPE, check=True, text=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def summarise(rows: list[dict]) -> dict[tuple[str, str], dict]:
    table: dict[tuple[str, str], dict] = {}
    for r in rows:
        for kind in (r["kind"], "all"):
            cell = table.setdefault((r["recipe"], kind), {"n": 0, "recall": 0.0, "answered": 0.0, "seconds": 0.0})
            cell["n"] += 1
            cell["recall"] += r["evidence_recall"]
            cell["answered"] += r["answered"]
            cell["seconds"] += r["seconds"]
    for cell in table.values():
        for key in ("recall", "answered", "seconds"):
            cell[key] = round(cell[key] / cell["n"], 3 if key != "seconds" else 1)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--length", type=int, default=4096, help="document length in the model's tokens")
    parser.add_argument("--window", type=int, default=1024, help="the embedded model's window, capped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-kind", type=int, default=3, help="probes per kind (at most 3)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref whose code gives the baseline rows; '' skips them")
    parser.add_argument("--allow-dirty", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from provenance import finish, markdown_line, stamp

    block = stamp(args.allow_dirty)
    repo = Path(__file__).resolve().parent.parent
    rows: dict[str, list[dict]] = {}
    if args.baseline_ref:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "-C", str(repo), "archive", args.baseline_ref], stdout=subprocess.PIPE, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            baseline_commit = subprocess.run(["git", "-C", str(repo), "rev-parse", args.baseline_ref], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
            rows["baseline"] = run_worker(Path(tmp), args)
        block["baseline_commit"] = baseline_commit
    rows["ours"] = run_worker(repo, args)
    finish(block)

    tables = {label: summarise(r) for label, r in rows.items()}
    kinds = ["paraphrased", "two_hop", "arithmetic", "all"]
    lines = [
        "# Evidence recall per recipe",
        "",
        f"Needles in real text, {args.length} tokens ({args.length / args.window:g}x the {args.window}-token window), "
        f"{args.per_kind} probe(s) per kind. Evidence recall: every gold sentence is inside a fact handed to the answer step. "
        f"Baseline: commit `{block.get('baseline_commit', '-')[:12]}` (the model copies the answering sentence). "
        "`answered`: expected answer string in the answer (embedded SmolLM2-135M).",
        "",
        "| recipe | " + " | ".join(f"{k} recall (baseline -> ours)" for k in kinds) + " | answered (baseline -> ours) | seconds per question (baseline -> ours) |",
        "|---" * (len(kinds) + 3) + "|",
    ]
    for name in args.recipes:
        def cell(label: str, kind: str, key: str) -> str:
            value = tables.get(label, {}).get((name, kind), {}).get(key)
            return "-" if value is None else f"{value:g}"

        lines.append(
            f"| {name} | "
            + " | ".join(f"{cell('baseline', k, 'recall')} -> {cell('ours', k, 'recall')}" for k in kinds)
            + f" | {cell('baseline', 'all', 'answered')} -> {cell('ours', 'all', 'answered')}"
            + f" | {cell('baseline', 'all', 'seconds')} -> {cell('ours', 'all', 'seconds')} |"
        )
    lines += ["", markdown_line(block), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "evidence.md").write_text("\n".join(lines))
    (RESULTS / "evidence.json").write_text(json.dumps({"provenance": block, "rows": rows}, indent=1))
    _plot(tables, args.recipes, kinds)
    print("\n".join(lines))


def _plot(tables: dict, recipes: list[str], kinds: list[str]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.2), sharey=True)
    for ax, kind in zip(axes, kinds):
        for offset, label in ((-0.2, "baseline"), (0.2, "ours")):
            values = [tables.get(label, {}).get((r, kind), {}).get("recall", 0.0) for r in recipes]
            ax.bar([i + offset for i in range(len(recipes))], values, width=0.4, label=label)
        ax.set_title(kind)
        ax.set_xticks(range(len(recipes)), [r.replace("_", "\n") for r in recipes], fontsize=7)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("evidence recall")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "evidence.png", dpi=120)


if __name__ == "__main__":
    main()
