"""Evaluation harness: RULER/needle-style and harder tasks on real text, QuALITY, scores, runs and reports.

    from ctxagent.evaluation import generate_tasks, run_eval, write_report
    tasks = generate_tasks(engine.count_tokens, lengths=[1024, 2048], depths=[0.1, 0.9])
    results = run_eval(tasks, ["direct", "map_reduce"], engine=engine, out="eval/results.jsonl")
    write_report(results, "eval")

`evaluate(...)` (pipeline.py) and `ctxagent eval` do all three in one call.
"""

from __future__ import annotations

from ctxagent.evaluation.haystack import HAYSTACKS, haystack_text, qa_pairs
from ctxagent.evaluation.report import write_report
from ctxagent.evaluation.runner import Result, load_results, resolve_recipes, run_eval
from ctxagent.evaluation.quality import quality_stories
from ctxagent.evaluation.scoring import (
    contains_match,
    evidence_recall,
    exact_match,
    normalize,
    score_prediction,
    score_task,
    token_f1,
    unsupported_specifics,
)
from ctxagent.evaluation.tasks import HARD_KINDS, TASK_KINDS, Needle, Task, build_task, generate_tasks, load_tasks, save_tasks, user_tasks
from ctxagent.evaluation.pipeline import EvalRun, evaluate, report_only  # noqa: E402 - after what it builds on

__all__ = [
    "EvalRun",
    "HARD_KINDS",
    "HAYSTACKS",
    "TASK_KINDS",
    "Needle",
    "Result",
    "Task",
    "build_task",
    "contains_match",
    "evaluate",
    "evidence_recall",
    "exact_match",
    "generate_tasks",
    "haystack_text",
    "load_results",
    "load_tasks",
    "normalize",
    "qa_pairs",
    "report_only",
    "quality_stories",
    "resolve_recipes",
    "run_eval",
    "save_tasks",
    "score_prediction",
    "score_task",
    "token_f1",
    "unsupported_specifics",
    "user_tasks",
    "write_report",
]
