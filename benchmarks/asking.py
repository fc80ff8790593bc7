"""What the scripts that ask a model real questions share (squad_passages.py,
persuasion_questions.py, verify_probe.py): their arguments, the agent they ask through, and the
table of answers by basis that their results report."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent


def add_run_args(ap: argparse.ArgumentParser, name: str) -> None:
    """--model, --out, --name (default `name`) and --allow-dirty."""
    ap.add_argument("--model", default=None, help="an hf model path, hub id or eval-model name (qwen2.5-coder-0.5b); default: the embedded model")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--name", default=name)
    ap.add_argument("--allow-dirty", action="store_true")


def agent_for(model: str | None) -> Any:
    """A ContextAgent over `model` through the hf engine, or over the embedded default when None."""
    from ctxagent import ContextAgent
    from ctxagent.evaluation.eval_models import resolve_model

    return ContextAgent(engine="hf", model=resolve_model(model)) if model else ContextAgent()


def by_basis(rows: Sequence[dict], bases: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """Rows counted by (basis, right): the markdown table (bases in `bases` order, empty ones left
    out) and the counts as the results JSON keeps them ("stated/wrong": 13)."""
    counts = Counter((r["basis"], r["right"]) for r in rows)
    table = [
        "| basis | right | wrong |",
        "|---|---:|---:|",
        *[f"| {b or '(empty)'} | {counts[(b, True)]} | {counts[(b, False)]} |" for b in bases if counts[(b, True)] or counts[(b, False)]],
    ]
    return table, {f"{b}/{'right' if ok else 'wrong'}": c for (b, ok), c in counts.items()}
