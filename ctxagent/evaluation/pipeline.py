"""`ctxagent.evaluation.evaluate(...)`: generate (or load) tasks, run recipes on them, write the report.

    from ctxagent.evaluation import evaluate
    run = evaluate(recipes="all", lengths=[1024, 2048, 4096], context_window=1024, out="eval-results")
    print(run.report.read_text())

The same as `ctxagent eval` on the command line. Everything lands in `out`:
tasks.jsonl (reusable with tasks=...), results.jsonl (one line per task x recipe;
a rerun resumes), report.md, summary.json, heatmap.png, frontier.png.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ctxagent.defaults import DEFAULT_ENGINE
from ctxagent.errors import InputError
from ctxagent.evaluation.report import write_report
from ctxagent.evaluation.runner import Result, load_results, resolve_recipes, run_eval
from ctxagent.evaluation.tasks import TASK_KINDS, Task, generate_tasks, load_tasks, save_tasks, user_tasks
from ctxagent.types import Budget

DEFAULT_LENGTHS = (1024, 2048, 4096)
DEFAULT_DEPTHS = (0.1, 0.5, 0.9)


@dataclass
class EvalRun:
    tasks: list[Task]
    results: list[Result]  # every result for these tasks and recipes, resumed ones included
    tasks_file: Path
    results_file: Path
    report: Path | None


def evaluate(
    *,
    recipes: Sequence[str] | str = "all",
    engine: Any = DEFAULT_ENGINE,
    engine_options: dict[str, Any] | None = None,
    context_window: int | None = None,
    kinds: Sequence[str] = TASK_KINDS,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    depths: Sequence[float] = DEFAULT_DEPTHS,
    samples: int = 1,
    seed: int = 0,
    tasks: str | Path | Sequence[Task] | None = None,
    documents: Sequence[Any] | None = None,
    qa: str | Path | None = None,
    out: str | Path = "eval-results",
    budget: Budget | None = None,
    generate_only: bool = False,
    plots: bool = True,
    progress: bool = True,
    command: str = "",
    allow_dirty: bool = False,
) -> EvalRun:
    """Evaluate recipes on generated tasks, a saved task file, or the user's documents + QA JSONL.

    The results name the commit that produced them (provenance.stamp); a tree with uncommitted
    changes is refused unless allow_dirty, and is then recorded as `<commit>-dirty`.
    """
    from ctxagent.engines import get_engine
    from ctxagent.evaluation import provenance

    block = None if generate_only else provenance.stamp(allow_dirty)
    out = Path(out)
    names = resolve_recipes(recipes)  # fail on a bad name before loading anything
    options = dict(engine_options or {})
    if "model" in options:  # an evaluation model's name (qwen2.5-coder-0.5b) stands for its verified GGUF
        from ctxagent.evaluation.eval_models import resolve_model

        options["model"] = resolve_model(options["model"])
    if context_window:
        options["context_window"] = context_window
    if isinstance(engine, str):
        label = engine
        engine = get_engine(engine, **options)
    else:
        label = str(getattr(engine, "name", type(engine).__name__))
    if (documents is None) != (qa is None):
        raise InputError("to evaluate on your own documents pass both the documents and the QA JSONL (--docs and --qa)")
    tasks_file = out / "tasks.jsonl"
    if isinstance(tasks, (str, Path)):
        tasks_file = Path(tasks)
        task_list = load_tasks(tasks_file)
    elif tasks is not None:
        task_list = list(tasks)
        save_tasks(task_list, tasks_file)
    elif documents is not None:
        task_list = user_tasks(documents, qa, engine.count_tokens)
        save_tasks(task_list, tasks_file)
    else:
        tokenizer = f"{label}:{getattr(engine, 'model_name', '')}"
        task_list = generate_tasks(engine.count_tokens, kinds=kinds, lengths=lengths, depths=depths, samples=samples, seed=seed, tokenizer=tokenizer)
        save_tasks(task_list, tasks_file)
    results_file = out / "results.jsonl"
    if generate_only:
        return EvalRun(task_list, [], tasks_file, results_file, None)
    run_eval(task_list, names, engine=engine, budget=budget, out=results_file, progress=progress)
    wanted = {t.id for t in task_list}
    results = [r for r in load_results(results_file) if r.task_id in wanted and r.recipe in names and r.engine == label]
    report = write_report(results, out, command=command, plots=plots, planned_runs=len(task_list) * len(names), provenance=provenance.finish(block))
    return EvalRun(task_list, results, tasks_file, results_file, report)


def report_only(out: str | Path, *, command: str = "", plots: bool = True) -> Path:
    """Rebuild report.md and the plots from an existing results.jsonl."""
    out = Path(out)
    results = load_results(out / "results.jsonl")
    planned = None
    if (out / "tasks.jsonl").is_file():
        planned = len(load_tasks(out / "tasks.jsonl")) * len({r.recipe for r in results})
    summary = out / "summary.json"
    block = json.loads(summary.read_text(encoding="utf-8")).get("provenance") if summary.is_file() else None
    return write_report(results, out, command=command, plots=plots, planned_runs=planned, provenance=block)


__all__ = ["DEFAULT_DEPTHS", "DEFAULT_LENGTHS", "EvalRun", "evaluate", "report_only"]
