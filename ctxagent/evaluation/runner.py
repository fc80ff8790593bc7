"""Run recipes x engine over tasks; one JSONL line per (task, recipe), written as it finishes.

A run goes through the public SDK (`ContextAgent.ask`), so it measures exactly
what users get: the recipe's own budget handling, citations, usage accounting.
Rerunning with the same output file skips the pairs already there, so an
interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, Field

from ctxagent.defaults import DEFAULT_ENGINE
from ctxagent.errors import CtxAgentError, InputError
from ctxagent.evaluation.scoring import evidence_recall, score_task, unsupported_specifics
from ctxagent.evaluation.tasks import Task
from ctxagent.types import Budget, Document

log = logging.getLogger(__name__)


class Result(BaseModel):
    task_id: str
    kind: str
    length: int
    tokens: int
    depth: float | None
    recipe: str
    recipe_used: str = Field(default="", description="what ran, e.g. auto:map_reduce")
    engine: str
    model: str = ""
    context_window: int = 0
    question: str
    prediction: str
    answers: list[str]
    metric: str
    score: float
    exact: float
    contains: float
    f1: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    engine_calls: int = 0
    seconds: float = 0.0
    cpu_seconds: float = Field(default=0.0, description="CPU time of this process (all threads): steadier than seconds on a shared machine")
    partial: bool = False
    citations: int = 0
    error: str = ""
    scoring: str = "text"
    gold_spans: list[tuple[int, int]] = Field(default_factory=list, description="the task's gold evidence (every needle) as [start, end)")
    evidence_spans: list[tuple[int, int]] = Field(default_factory=list, description="what the answer step says it read: its `evidence` trace step, else its citations")
    evidence_source: str = Field(default="", description="evidence: the answer's `evidence` trace step; citations: no such step (older code), its citations; none: neither")
    quotes: list[str] = Field(default_factory=list, description="the answer's citation quotes, verbatim")
    evidence_recall: float | None = Field(default=None, description="share of gold spans covered by evidence_spans; None when the task has no gold spans")
    unsupported: list[str] = Field(default_factory=list, description="numbers, dates and names in the answer found in no citation quote nor in the question")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def resolve_recipes(names: Sequence[str] | str) -> list[str]:
    """Expand "all" to every registered recipe and check every name exists."""
    from ctxagent import recipes

    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    known = recipes.registry.names()
    out: list[str] = []
    for name in names:
        if name == "all":
            for n in known:
                try:
                    recipes.registry.get(n)
                except ImportError as exc:  # a recipe whose optional dependency is missing
                    log.warning("skipping recipe %s: %s", n, exc)
                    continue
                if n not in out:
                    out.append(n)
        else:
            recipes.registry.get(name)  # raises UnknownNameError naming the known recipes
            if name not in out:
                out.append(name)
    if not out:
        raise InputError(f"no recipe to evaluate; pass --recipes with names from: {', '.join(known)}, or 'all'")
    return out


def _done(path: Path) -> set[tuple[str, str, str]]:
    if not path.is_file():
        return set()
    done = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            done.add((row["task_id"], row["recipe"], row["engine"]))
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut short by an interrupted run: that pair runs again
    return done


def answer_evidence(answer: Any, doc_id: str) -> tuple[list[tuple[int, int]], str]:
    """The spans the answer step read: its `evidence` trace step (spans=[[doc_id, start, end], ...]).

    Code older than that step has none; then the answer's citations stand in, and the
    source says so, because citations are what was quoted, a subset of what was read.
    """
    steps = [s for s in answer.trace.steps if s.name == "evidence" and "spans" in s.detail]
    if steps:
        spans = [(int(start), int(end)) for step in steps for d, start, end in step.detail["spans"] if str(d) == doc_id]
        return spans, "evidence"
    if answer.citations:
        return [(c.start, c.end) for c in answer.citations if c.doc_id == doc_id], "citations"
    return [], "none"


def run_one(agent: Any, task: Task, recipe: str, budget: Budget, engine_label: str) -> Result:
    """Ask one task's question with one recipe and score the answer; failures become error rows."""
    engine = agent.engine
    base = dict(
        task_id=task.id,
        kind=task.kind,
        length=task.length,
        tokens=task.tokens,
        depth=task.depth,
        recipe=recipe,
        engine=engine_label,
        model=str(getattr(engine, "model_name", "")),
        context_window=engine.context_window,
        question=task.question,
        answers=task.answers,
        metric=task.metric,
        scoring=task.scoring,
        gold_spans=[(n.start, n.start + len(n.text)) for n in task.needles],
    )
    began, cpu_began = time.perf_counter(), time.process_time()
    try:
        answer = agent.ask(Document(id=task.id, text=task.context), task.question, recipe=recipe, budget=budget)
    except Exception as exc:  # noqa: BLE001 - one failing run must not end the evaluation
        log.warning("%s on %s failed: %s", recipe, task.id, exc, exc_info=not isinstance(exc, CtxAgentError))
        return Result(
            **base,
            prediction="",
            score=0.0,
            exact=0.0,
            contains=0.0,
            f1=0.0,
            seconds=round(time.perf_counter() - began, 3),
            cpu_seconds=round(time.process_time() - cpu_began, 3),
            error=f"{type(exc).__name__}: {exc}",
        )
    scores = score_task(answer.text, task.answers, task.metric, task.scoring, task.options)
    spans, source = answer_evidence(answer, task.id)
    quotes = [c.quote for c in answer.citations]
    u = answer.usage
    return Result(
        **base,
        evidence_spans=spans,
        evidence_source=source,
        quotes=quotes,
        evidence_recall=evidence_recall(base["gold_spans"], spans),
        unsupported=unsupported_specifics(answer.text, quotes, task.question),
        recipe_used=answer.recipe,
        prediction=answer.text,
        **scores.as_dict(),
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        engine_calls=u.engine_calls,
        seconds=round(time.perf_counter() - began, 3),
        cpu_seconds=round(time.process_time() - cpu_began, 3),
        partial=answer.partial,
        citations=len(answer.citations),
    )


def run_eval(
    tasks: Sequence[Task],
    recipes: Sequence[str] | str = "all",
    *,
    engine: Any = DEFAULT_ENGINE,
    engine_options: dict[str, Any] | None = None,
    budget: Budget | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> list[Result]:
    """Evaluate every recipe on every task with one engine.

    engine: a registered engine name or an Engine instance (reused across all runs).
    out: JSONL file to append results to; pairs already in it are skipped (resume).
    Returns the results of this call (not the skipped ones).
    """
    from tqdm.auto import tqdm

    from ctxagent.agent import ContextAgent
    from ctxagent.engines import get_engine

    if not tasks:
        raise InputError("no tasks to evaluate: generate some (ctxagent eval --lengths ...) or pass --tasks FILE")
    names = resolve_recipes(recipes)
    label = engine if isinstance(engine, str) else str(getattr(engine, "name", type(engine).__name__))
    if isinstance(engine, str):
        engine = get_engine(engine, **(engine_options or {}))
    agent = ContextAgent(engine=engine)
    budget = budget or Budget(max_new_tokens=64)
    path = Path(out) if out else None
    done = _done(path) if path else set()
    # Task by task, every recipe on each: a run cut short still compares the recipes on the same tasks.
    todo = [(r, t) for t in tasks for r in names if (t.id, r, label) not in done]
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(todo) < len(names) * len(tasks):
            log.info("resuming: %d of %d runs already in %s", len(names) * len(tasks) - len(todo), len(names) * len(tasks), path)
    results: list[Result] = []
    correct = 0.0
    with tqdm(total=len(todo), desc="ctxagent eval", unit="run", disable=not progress) as bar:
        for recipe, task in todo:
            bar.set_postfix_str(f"{recipe} {task.kind} {task.length}", refresh=False)
            result = run_one(agent, task, recipe, budget, label)
            results.append(result)
            correct += result.score
            if path:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(result.model_dump_json() + "\n")
            bar.update(1)
            bar.set_postfix_str(f"{recipe} acc {correct / len(results):.2f}")
    return results


def load_results(path: str | Path) -> list[Result]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: run the evaluation first (ctxagent eval ... --out {path.parent})")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(Result.model_validate_json(line))
            except ValueError:
                log.warning("skipping an unreadable line in %s", path)
    return rows
