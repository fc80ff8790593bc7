"""How much text a model really uses at once: its *effective* context, per model.

RULER's finding: models use far less than their nominal window. (On single needles the
embedded SmolLM2-135M does read its whole 8K window: 5 of 5 at every length up to 7,936
tokens, docs/recipes.md; harder questions find less.) So chunks are sized to the effective
context, measured once by `ctxagent eval --effective-context` (the longest length
at which single-needle accuracy stays high) and stored per model in the cache.
Until it is measured, a conservative default is used: a quarter of the window,
but at least 1024 tokens (never more than the window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctxagent.engines.speed import load_json, save_json

KIND = "effective_context"
MIN_DEFAULT = 1024


@dataclass(frozen=True)
class Reach:
    tokens: int
    source: str  # "measured" | "default"

    def describe(self) -> str:
        how = "measured by `ctxagent eval --effective-context`" if self.source == "measured" else "default: a quarter of the window; measure it with `ctxagent eval --effective-context`"
        return f"effective context {self.tokens:,} tokens ({how})"


def model_key(engine: Any) -> str:
    """Effective context belongs to the model, not the machine: engine kind and model name."""
    return f"{getattr(engine, 'name', type(engine).__name__)}|{getattr(engine, 'model_name', '?')}"


def default_reach(context_window: int) -> int:
    return min(context_window, max(MIN_DEFAULT, context_window // 4))


def effective_context(engine: Any) -> Reach:
    """The stored measurement for this model (capped by the engine's window), else the default."""
    window = int(engine.context_window)
    record = load_json(KIND, model_key(engine))
    if record and int(record.get("tokens", 0)) > 0:
        return Reach(min(window, int(record["tokens"])), "measured")
    return Reach(default_reach(window), "default")


def store_effective_context(engine: Any, tokens: int, accuracy_by_length: dict[int, float]) -> None:
    save_json(KIND, model_key(engine), {"tokens": int(tokens), "accuracy_by_length": {str(k): v for k, v in accuracy_by_length.items()}})
