"""Recipes against reading directly, on the same real questions (issue 25's A/B).

The questions are the bundled SQuAD 2.0 ones (`squad` tasks: real questions over whole Wikipedia
articles, ctxagent/evaluation/squad.py). With a model of window W:

- **A, the document fits** (default 0.75 W tokens: the gold article among others): `direct` reads
  the whole document; `auto` and each recipe read it their way.
- **B, the document is 4x the window** (default 4 W tokens: the same gold article among ~30
  others): each recipe, `direct` included (it reads the first W tokens and says so).
- **oracle**: `direct` given only the gold paragraph's neighbourhood (the paragraphs around it,
  `--oracle-tokens`), the upper bound of what evidence selection can give this model.

Every condition asks the same N questions (sample s is the s-th question of one seeded order, at
every length). Per case x recipe the table gives accuracy with its 95% Wilson interval, evidence
recall (the gold answer's span lies in what the answer step read), mean token F1 and the median
answer length in words beside accuracy (accuracy credits an answer that *contains* a reference
answer, so a long answer running on into quoted text can look right; F1 and length show it),
the share of answers with an unsupported name or number, answers carrying prompt scaffolding,
prompt tokens read per question and seconds per question (mean and median). Rows go to OUT/results.jsonl as they finish (a rerun
with the same --out resumes); OUT/ab_direct.{md,json,png} hold the table, the numbers with
their provenance (commit, machine, load, command) and the plot. `--time-limit` stops starting new
runs after that many seconds, so a run on a lent machine always ends with its table written;
runs not made are counted in the table.

    # the evaluation model, window 32K, on a GPU (see docs/evaluation.md for the lent-GPU recipe)
    python benchmarks/ab_direct.py --model qwen2.5-coder-0.5b --device cuda --cases A,B --n 30 --out OUT
    # the embedded SmolLM2 (own window 8K)
    python benchmarks/ab_direct.py --device cuda --cases A,B --n 30 --out OUT
    # CPU smoke: 4K-token documents (window capped to 4K, so B is 16K), a few questions
    python benchmarks/ab_direct.py --model qwen2.5-coder-0.5b --context-window 4096 --a-length 3072 --b-length 8192 --n 3 --recipes auto,retrieve_then_reason --out /tmp/ab
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Not benchmarks/ itself (Python puts the script's folder first): benchmarks/kernels.py would shadow
# the `kernels` package that transformers imports while it converts a GGUF file (a fresh GPU machine).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import finish, markdown_line, shared_note, stamp, wilson  # noqa: E402
from benchmarks.plotting import pyplot  # noqa: E402

# Every registered recipe but `direct`, which is the baseline row of its own.
DEFAULT_RECIPES = "auto,map_reduce,retrieve_then_reason,recurrent,memory_tree,compress_then_answer,agentic"
CASES = ("A", "B")


def scaffolding_checker():
    """The library's check for prompt text in an answer (ctxagent.scaffolding, issue 25), or, in
    code older than it, a plain search for the labels and phrases of ctxagent's prompts."""
    try:
        from ctxagent.scaffolding import scaffolding_in

        return scaffolding_in, "ctxagent.scaffolding.scaffolding_in"
    except ImportError:
        import re

        pattern = re.compile(r"(?im)^\s*(question|facts|facts used|document|text)\s*:|answer using the facts above|<\|im_(start|end)\|>")
        return (lambda text: [m.group(0) for m in pattern.finditer(text)]), "benchmarks/ab_direct.py fallback pattern"


@dataclass
class Plan:
    case: str  # A, B or oracle
    recipe: str
    task: Any


def conditions(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(case, recipe) in the order each question runs them: A's, B's, then the oracle."""
    recipes = [r for r in args.recipes.split(",") if r]
    return [(case, recipe) for case in args.cases for recipe in ["direct", *recipes]] + [("oracle", "direct")]


def question_plans(engine: Any, args: argparse.Namespace, lengths: dict[str, int], sample: int) -> list[Plan]:
    """One question's runs, every condition on it (built when its turn comes, so a time limit
    never waits for documents it will not read)."""
    from ctxagent.evaluation.squad import neighbourhood_task
    from ctxagent.evaluation.tasks import build_task

    tasks = {case: build_task("squad", lengths[case], None, engine.count_tokens, seed=args.seed, sample=sample) for case in args.cases}
    oracle = neighbourhood_task(tasks[args.cases[0]], args.oracle_tokens, engine.count_tokens)
    return [Plan(case, recipe, oracle if case == "oracle" else tasks[case]) for case, recipe in conditions(args)]


def done_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run: that run happens again
    return rows


def complete_questions(rows: list[dict], conditions: set[tuple[str, str]]) -> set[str]:
    """Questions answered in every condition: the table compares recipes on these alone, so a run
    stopped by its time limit halfway through a question does not tilt one row."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        seen.setdefault(r["question"], set()).add((r["case"], r["recipe"]))
    return {q for q, done in seen.items() if conditions <= done}


def summarise(rows: list[dict], planned: dict[tuple[str, str], int]) -> list[dict]:
    complete = complete_questions(rows, set(planned))
    table = []
    for (case, recipe), n_planned in planned.items():
        cell = [r for r in rows if r["case"] == case and r["recipe"] == recipe and r["question"] in complete]
        n = len(cell)
        right = sum(r["score"] >= 1.0 for r in cell)
        low, high = wilson(right, n)
        recalls = [r["evidence_recall"] for r in cell if r["evidence_recall"] is not None]
        seconds = [r["seconds"] for r in cell]
        words = [answer_words(r["prediction"]) for r in cell]
        table.append(
            {
                "case": case,
                "recipe": recipe,
                "n": n,
                "planned": n_planned,
                "accuracy": right / n if n else None,
                "ci95": [round(low, 3), round(high, 3)],
                "evidence_recall": statistics.fmean(recalls) if recalls else None,
                "f1": statistics.fmean(r["f1"] for r in cell) if n else None,
                "answer_words_median": statistics.median(words) if n else None,
                "answer_words_mean": statistics.fmean(words) if n else None,
                "unsupported_share": sum(bool(r["unsupported"]) for r in cell) / n if n else None,
                "scaffolding": sum(bool(r["scaffolding"]) for r in cell),
                "not_found": sum("NOT FOUND" in r["prediction"].upper() for r in cell),
                "errors": sum(bool(r["error"]) for r in cell),
                "prompt_tokens": statistics.fmean(r["prompt_tokens"] for r in cell) if n else None,
                "document_tokens": statistics.fmean(r["tokens"] for r in cell) if n else None,
                "engine_calls": statistics.fmean(r["engine_calls"] for r in cell) if n else None,
                "seconds_mean": statistics.fmean(seconds) if n else None,
                "seconds_median": statistics.median(seconds) if n else None,
                "recipes_used": sorted({r["recipe_used"] for r in cell if r["recipe_used"]}),
            }
        )
    return table


def answer_words(prediction: str) -> int:
    """An answer's length in words (whitespace-separated)."""
    return len(prediction.split())


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def markdown(table: list[dict], meta: dict) -> str:
    lines = [
        f"# Recipes against direct reading: {meta['model']} (window {meta['window']:,} tokens)",
        "",
        markdown_line(meta["provenance"]),
        "",
        f"{meta['questions']} SQuAD 2.0 questions over whole Wikipedia articles (CC BY-SA 4.0), the same in every row. "
        f"A: documents of {meta['lengths'].get('A', 0):,} tokens (the gold article among others), read whole by `direct`; "
        f"B: {meta['lengths'].get('B', 0):,} tokens; oracle: `direct` on the gold paragraph's neighbourhood (at most {meta['oracle_tokens']:,} tokens). "
        f"Device: {meta['device']}. `auto` planned with an effective context of {meta['reach']['tokens']:,} tokens ({meta['reach']['source']}). "
        f"Scaffolding checked by {meta['scaffolding_check']}.",
        "",
        "| case | recipe | n | accuracy [95% CI] | F1 | answer words (median, mean) | evidence recall | unsupported | scaffolding | NOT FOUND | errors | prompt tokens / q | s / q (mean, median) | ran as |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        n = f"{row['n']}" + (f" of {row['planned']}" if row["n"] < row["planned"] else "")
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.2f} [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]"
        share = "-" if row["unsupported_share"] is None else f"{100 * row['unsupported_share']:.0f}%"
        seconds = "-" if row["seconds_mean"] is None else f"{row['seconds_mean']:.1f}, {row['seconds_median']:.1f}"
        length = "-" if row.get("answer_words_median") is None else f"{row['answer_words_median']:g}, {row['answer_words_mean']:.1f}"
        lines.append(
            f"| {row['case']} | {row['recipe']} | {n} | {acc} | {_f(row.get('f1'), '.2f')} | {length} | {_f(row['evidence_recall'], '.2f')} | {share} | {row['scaffolding']} | "
            f"{row['not_found']} | {row['errors']} | {_f(row['prompt_tokens'], ',.0f')} | {seconds} | {', '.join(row['recipes_used'])} |"
        )
    lines += ["", "Accuracy: the answer contains a reference answer (SQuAD normalisation). F1: mean token F1 against the best reference answer. "
              "Answer words: the answer's length; a long answer that contains the reference by running on into quoted text scores on accuracy, not on F1. "
              "Evidence recall: share of answers whose answer step read the gold answer's span."]
    note = shared_note(meta["provenance"].get("load_end") or [], meta["provenance"].get("machine", {}).get("cpus"))
    if note:
        lines += ["", note]
    if meta.get("stopped") or meta.get("incomplete_rows"):
        lines += ["", f"Stopped by --time-limit: {meta['stopped']} planned runs were not made; every row counts only the questions answered in every condition "
                  f"({meta.get('incomplete_rows', 0)} runs of unfinished questions are in results.jsonl but not in the table)."]
    return "\n".join(lines) + "\n"


def plot(table: list[dict], meta: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    rows = [r for r in table if r["n"]]
    labels = [f"{r['case']}: {r['recipe']}" for r in rows]
    colours = {"A": "tab:blue", "B": "tab:orange", "oracle": "tab:green"}
    for i, r in enumerate(rows):
        low, high = r["ci95"]
        left.barh(i, r["accuracy"], color=colours[r["case"]])
        left.errorbar(r["accuracy"], i, xerr=[[r["accuracy"] - low], [high - r["accuracy"]]], color="black", capsize=3)
        right.scatter(r["prompt_tokens"], r["accuracy"], color=colours[r["case"]])
        right.annotate(labels[i], (r["prompt_tokens"], r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    left.set_yticks(range(len(rows)), labels, fontsize=8)
    left.invert_yaxis()
    left.set_xlim(0, 1)
    left.set_xlabel("accuracy (95% Wilson interval)")
    right.set_xscale("log")
    right.set_xlabel("prompt tokens read per question")
    right.set_ylabel("accuracy")
    right.set_ylim(-0.05, 1.05)
    fig.suptitle(f"{meta['model']}, window {meta['window']:,}: A {meta['lengths'].get('A', 0):,} tokens, B {meta['lengths'].get('B', 0):,} tokens, {meta['questions']} SQuAD questions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a .gguf path, model folder, hub id or evaluation model name (qwen2.5-coder-0.5b); default the embedded SmolLM2")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--context-window", type=int, help="cap the model's window (default its own: 32K for Qwen2.5-Coder, 8K for SmolLM2)")
    parser.add_argument("--cases", type=lambda s: [c.strip() for c in s.split(",") if c.strip()], default=list(CASES), help="A, B or A,B (default)")
    parser.add_argument("--n", type=int, default=10, help="questions (default 10; 48 are bundled)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", default=DEFAULT_RECIPES, help=f"recipes besides direct (default {DEFAULT_RECIPES})")
    parser.add_argument("--a-length", type=int, help="A's document length in tokens (default 0.75 x window)")
    parser.add_argument("--b-length", type=int, help="B's document length in tokens (default 4 x window)")
    parser.add_argument("--oracle-tokens", type=int, default=1024, help="the oracle's neighbourhood of the gold paragraph, in tokens (default 1024)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--measure-reach", action="store_true", help="measure the model's effective context first (ctxagent eval --effective-context; stored per model), which auto sizes its plan by; default: the stored value, else auto's default (a quarter of the window)")
    parser.add_argument("--time-limit", type=float, help="start no run after this many seconds (the table is written either way)")
    parser.add_argument("--out", required=True, help="folder for results.jsonl and ab_direct.{md,json,png}; a rerun resumes")
    parser.add_argument("--allow-dirty", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="rebuild ab_direct.{md,json,png} from OUT/results.jsonl and OUT/provenance.json (e.g. after a run killed at its limit); loads no model")
    args = parser.parse_args(argv)
    if args.report_only:
        return report_only(Path(args.out))
    bad = [c for c in args.cases if c not in CASES]
    if bad:
        parser.error(f"unknown case(s) {bad}; use A, B or A,B")

    began = time.perf_counter()
    provenance = stamp(args.allow_dirty)
    from ctxagent.agent import ContextAgent
    from ctxagent.engines import get_engine
    from ctxagent.evaluation import resolve_recipes
    from ctxagent.evaluation.eval_models import resolve_model
    from ctxagent.evaluation.runner import run_one
    from ctxagent.types import Budget

    resolve_recipes(args.recipes)  # a bad name fails before the model loads
    options: dict[str, Any] = {}
    if args.model:
        options["model"] = resolve_model(args.model)
    if args.device:
        options["device"] = args.device
    if args.context_window:
        options["context_window"] = args.context_window
    engine = get_engine("hf", **options)
    from ctxagent.engines.reach import effective_context

    if args.measure_reach:
        from ctxagent.evaluation.reach import measure_effective_context

        measured = measure_effective_context(engine)
        print(measured.markdown(), file=sys.stderr)
    reach = effective_context(engine)
    agent = ContextAgent(engine=engine)
    budget = Budget(max_new_tokens=args.max_new_tokens)
    check, check_name = scaffolding_checker()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1), encoding="utf-8")  # for --report-only after a killed run
    window = engine.context_window
    lengths = {"A": args.a_length or int(0.75 * window), "B": args.b_length or 4 * window}
    planned = {c: args.n for c in conditions(args)}
    total = args.n * len(planned)
    label = f"hf:{engine.model_name}:{engine.context_window}"
    have = {(r["case"], r["recipe"], r["task_id"]) for r in done_rows(results) if r.get("engine") == label}
    print(f"{engine.model_name} on {engine.device}, window {window}, lengths {lengths}; {total} runs, {len(have)} already in {results} (setup {time.perf_counter() - began:.0f} s)", file=sys.stderr)
    made = 0
    for sample in range(args.n):
        if args.time_limit and time.perf_counter() - began > args.time_limit:
            break
        for plan in question_plans(engine, args, lengths, sample):
            if (plan.case, plan.recipe, plan.task.id) in have:
                made += 1
                continue
            if args.time_limit and time.perf_counter() - began > args.time_limit:
                break
            result = run_one(agent, plan.task, plan.recipe, budget, label)
            row = {"case": plan.case, **result.model_dump(exclude={"quotes", "gold_spans", "evidence_spans"}), "scaffolding": check(result.prediction)}
            with results.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            made += 1
            print(f"[{made}/{total}] q{sample} {plan.case} {plan.recipe:<22} {result.score:.0f} {result.seconds:6.1f}s {result.prompt_tokens:>7} tok  {result.prediction[:60]!r}", file=sys.stderr)
    stopped = total - made
    rows = [r for r in done_rows(results) if r.get("engine") == label]
    table = summarise(rows, planned)
    complete = complete_questions(rows, set(planned))
    meta = {
        "provenance": finish(provenance),
        "model": engine.model_name,
        "window": engine.context_window,
        "device": str(engine.device),
        "lengths": lengths,
        "oracle_tokens": args.oracle_tokens,
        "questions": len(complete),
        "questions_planned": args.n,
        "seed": args.seed,
        "max_new_tokens": args.max_new_tokens,
        "scaffolding_check": check_name,
        "reach": {"tokens": reach.tokens, "source": reach.source},
        "engine_load_seconds": round(getattr(engine, "load_seconds", 0.0), 1),
        "wall_seconds": round(time.perf_counter() - began, 1),
        "stopped": stopped,
        "incomplete_rows": sum(r["question"] not in complete for r in rows),
    }
    write(out, table, meta)
    return 0


def write(out: Path, table: list[dict], meta: dict) -> None:
    (out / "ab_direct.json").write_text(json.dumps({**meta, "table": table}, indent=1), encoding="utf-8")
    (out / "ab_direct.md").write_text(markdown(table, meta), encoding="utf-8")
    try:
        plot(table, meta, out / "ab_direct.png")
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
    print(markdown(table, meta))


def report_only(out: Path) -> int:
    """The table from the rows a run left, its provenance from the start of that run."""
    rows = done_rows(out / "results.jsonl")
    if not rows:
        print(f"no results in {out / 'results.jsonl'}", file=sys.stderr)
        return 2
    engine = rows[0]["engine"]
    rows = [r for r in rows if r["engine"] == engine]
    order = {"A": 0, "B": 1, "oracle": 2}
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    conds = sorted({(r["case"], r["recipe"]) for r in rows}, key=lambda c: (order.get(c[0], 3), recipes.index(c[1])))
    asked = len({r["question"] for r in rows})
    table = summarise(rows, {c: asked for c in conds})
    complete = complete_questions(rows, set(conds))
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8")) if (out / "provenance.json").is_file() else {"commit": "unknown", "date": "?", "command": "?"}
    provenance.setdefault("load_end", None)
    meta = {
        "provenance": provenance,
        "model": rows[0]["model"],
        "window": rows[0]["context_window"],
        "device": "see provenance",
        "lengths": {case: next(r["length"] for r in rows if r["case"] == case) for case in ("A", "B") if any(r["case"] == case for r in rows)},
        "oracle_tokens": max((r["tokens"] for r in rows if r["case"] == "oracle"), default=0),
        "questions": len(complete),
        "questions_planned": asked,
        "scaffolding_check": "as recorded in results.jsonl",
        "reach": {"tokens": 0, "source": "not recorded by --report-only"},
        "stopped": 0,
        "incomplete_rows": sum(r["question"] not in complete for r in rows),
        "report_only": True,
    }
    write(out, table, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
