"""The SDK entry point: `ContextAgent().ask(document, question)`.

The agent holds an engine (built on first use, so constructing one is free) and
default recipe and budget; each `ask` may override them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from ctxagent.engines import DEFAULT_ENGINE, Engine, get_engine
from ctxagent.errors import InputError
from ctxagent.loaders import load_document
from ctxagent.recipes import DEFAULT_RECIPE, get_recipe
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import INTERACTIVE_MAX_SECONDS, Answer, Budget, Document

log = logging.getLogger(__name__)

Source = str | Path | Document


class ContextAgent:
    """Answers questions about documents of any length with a local (or served) LLM.

    engine: a registered engine name ("hf", "vllm", "openai", ...) or an Engine instance.
    engine_options: passed to the engine, e.g. model="HuggingFaceTB/SmolLM2-360M-Instruct".
    budget: the default Budget of `ask`. When none is given, questions get a time limit of
    `INTERACTIVE_MAX_SECONDS` (60 s) and `auto` picks the most thorough plan that fits it at
    the engine's measured speed; pass `Budget(max_seconds=None)` (here or to `ask`) to lift it.
    """

    def __init__(
        self,
        engine: str | Engine = DEFAULT_ENGINE,
        recipe: str = DEFAULT_RECIPE,
        budget: Budget | None = None,
        **engine_options: Any,
    ) -> None:
        self._engine_spec = engine
        self._engine_options = engine_options
        self._engine: Engine | None = None if isinstance(engine, str) else engine
        self.recipe = recipe
        self.default_time_limit = budget is None
        self.budget = budget or Budget(max_seconds=INTERACTIVE_MAX_SECONDS)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            log.info("loading engine %s", self._engine_spec)
            self._engine = get_engine(str(self._engine_spec), **self._engine_options)
        return self._engine

    def ask(
        self,
        source: Source | Sequence[Source],
        question: str,
        *,
        recipe: str | None = None,
        budget: Budget | None = None,
        **recipe_options: Any,
    ) -> Answer:
        """Answer `question` about one or more documents (paths or Document objects)."""
        question = check_question(question)
        documents = load_sources(source)
        runner = get_recipe(recipe or self.recipe, **recipe_options)
        defaulted = budget is None and self.default_time_limit
        if defaulted:
            log.info("time budget %g s, the default for interactive questions; Budget(max_seconds=None) lifts it", INTERACTIVE_MAX_SECONDS)
        ctx = RunContext(engine=self.engine, budget=budget or self.budget)
        answer = run_recipe(runner, ctx, documents, question)
        if defaulted and _shaped_by_time(answer):
            note = (
                f"the default time budget of {INTERACTIVE_MAX_SECONDS:g} s for interactive questions shaped this answer "
                "(see the trace's plan step); pass budget=Budget(max_seconds=None) (CLI: --max-seconds 0) for a slower, more thorough one"
            )
            answer = answer.model_copy(update={"notes": [*answer.notes, note]})
        return answer


def _shaped_by_time(answer: Answer) -> bool:
    """The time limit made `auto` pick a cheaper plan, or stopped the recipe."""
    if answer.partial and any(s.name == "budget_exhausted" and s.detail.get("axis") == "seconds" for s in answer.trace.steps):
        return True
    return any(s.name == "plan" and "max_seconds" in str(s.detail.get("why", "")) for s in answer.trace.steps)


def check_question(question: object) -> str:
    if not isinstance(question, str):
        raise InputError(f"the question must be a string, got {type(question).__name__}")
    if not question.strip():
        raise InputError("the question is empty: pass the question to ask about the document")
    return question.strip()


def load_sources(source: Source | Sequence[Source]) -> list[Document]:
    """Paths become Documents through the loaders; Documents pass through. Ids must be unique."""
    items = [source] if isinstance(source, (str, Path, Document)) else list(source)
    if not items:
        raise InputError("no document given: pass a file path or a Document")
    documents = [item if isinstance(item, Document) else load_document(item) for item in items]
    seen: set[str] = set()
    for doc in documents:
        if not doc.text.strip():
            raise InputError(f"{doc.id}: the document is empty (no text to ask about)")
        if doc.id in seen:
            raise InputError(f"two documents share the id {doc.id!r}; give each a distinct id so citations can name them")
        seen.add(doc.id)
    return documents
