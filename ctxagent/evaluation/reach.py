"""`ctxagent eval --effective-context`: how much text the model really uses at once.

RULER (Hsieh et al., 2024) showed that models use far less than their nominal window.
This measures it for the engine's model: single needles in the bundled real text at
lengths doubling up to the window, read densely (`direct`, the whole document in one
prompt); the effective context is the longest length at which accuracy stays at or
above `threshold`, every shorter length passing too. It is stored per model in the
cache (ctxagent.engines.reach), where `auto` reads it to size its chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ctxagent.engines.reach import MIN_DEFAULT, store_effective_context
from ctxagent.evaluation.scoring import score_prediction
from ctxagent.evaluation.tasks import build_task
from ctxagent.types import Budget, Document

DEFAULT_DEPTHS = (0.1, 0.3, 0.5, 0.7, 0.9)
# Room left in the window for the prompt frame, the question and the answer.
PROMPT_ROOM = 256


@dataclass
class EffectiveContext:
    tokens: int
    threshold: float
    accuracy_by_length: dict[int, float] = field(default_factory=dict)
    model: str = ""

    def markdown(self) -> str:
        rows = "\n".join(f"| {length} | {acc:.2f} |" for length, acc in sorted(self.accuracy_by_length.items()))
        return (
            f"effective context of {self.model}: {self.tokens} tokens (longest length with single-needle accuracy >= {self.threshold:g})\n\n"
            f"| length (tokens) | accuracy |\n|---|---|\n{rows}\n"
        )


def default_lengths(context_window: int, smallest: int = 512) -> list[int]:
    """Doubling lengths from `smallest` up to the largest that leaves room in the window."""
    top = context_window - PROMPT_ROOM
    lengths, n = [], smallest
    while n < top:
        lengths.append(n)
        n *= 2
    return lengths + [top] if top >= smallest else [max(64, top)]


def measure_effective_context(
    engine: Any,
    lengths: Sequence[int] | None = None,
    depths: Sequence[float] = DEFAULT_DEPTHS,
    samples: int = 1,
    threshold: float = 0.8,
    seed: int = 0,
    max_new_tokens: int = 48,
    store: bool = True,
) -> EffectiveContext:
    """Accuracy of `direct` on single needles per length; the longest passing length, stored per model."""
    from ctxagent.recipes import get_recipe
    from ctxagent.recipes.base import run_recipe
    from ctxagent.recipes.context import RunContext

    lengths = sorted(lengths or default_lengths(engine.context_window))
    direct = get_recipe("direct")
    accuracy: dict[int, float] = {}
    effective = 0
    for length in lengths:
        scores = []
        for depth in depths:
            for sample in range(samples):
                task = build_task("niah_single", length, depth, engine.count_tokens, seed=seed, sample=sample)
                ctx = RunContext(engine=engine, budget=Budget(max_new_tokens=max_new_tokens))
                answer = run_recipe(direct, ctx, [Document(id=task.id, text=task.context)], task.question)
                scores.append(score_prediction(answer.text, task.answers, task.metric).score)
        accuracy[length] = sum(scores) / len(scores)
        if accuracy[length] < threshold:
            break  # longer documents only get harder; stop paying for them
        effective = length
    # None passed: the shortest length tried, halved, but never below a useful chunk.
    tokens = effective or max(MIN_DEFAULT // 4, lengths[0] // 2)
    if store:
        store_effective_context(engine, tokens, accuracy)
    return EffectiveContext(tokens=tokens, threshold=threshold, accuracy_by_length=accuracy, model=str(getattr(engine, "model_name", "")))
