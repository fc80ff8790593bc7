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
from ctxagent.pages import annotate_pages
from ctxagent.recipes import DEFAULT_RECIPE, get_recipe
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, Budget, Document

log = logging.getLogger(__name__)

Source = str | Path | Document


class ContextAgent:
    """Answers questions about documents of any length with a local (or served) LLM.

    engine: a registered engine name ("hf", "vllm", "openai", ...) or an Engine instance.
    engine_options: passed to the engine, e.g. model="HuggingFaceTB/SmolLM2-360M-Instruct".
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
        self.budget = budget or Budget()

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
        """Answer `question` about one or more documents (paths or Document objects), or across
        a whole `Corpus` (retrieval picks the documents, the recipe reads them; see ctxagent.corpus.ask)."""
        question = check_question(question)
        corpus = _as_corpus(source)
        if corpus is not None:
            from ctxagent.corpus.ask import DEFAULT_CORPUS_RECIPE, ask_corpus

            return ask_corpus(self.engine, corpus, question, recipe=recipe or self.recipe or DEFAULT_CORPUS_RECIPE, budget=budget or self.budget, **recipe_options)
        documents = load_sources(source)
        runner = get_recipe(recipe or self.recipe, **recipe_options)
        ctx = RunContext(engine=self.engine, budget=budget or self.budget)
        return annotate_pages(run_recipe(runner, ctx, documents, question), documents)


def _as_corpus(source: object) -> Any:
    """The Corpus or CorpusIndex `source` is, else None (checked without importing the corpus code)."""
    kind = type(source).__name__
    if kind in ("Corpus", "CorpusIndex") and type(source).__module__.startswith("ctxagent."):
        return source
    return None


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
