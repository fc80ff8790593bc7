"""The SDK entry point: `ContextAgent().ask(document, question)`.

The agent holds an engine (built on first use, so constructing one is free) and
default recipe and budget; each `ask` may override them.

`aask` is `ask` for asyncio code; `stream` and `astream` yield what happens while the
question is answered (plan, steps, the answer's draft tokens) and end with the final,
checked Answer. Runs happen in a worker thread because the engines are synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

from ctxagent.corpus import Corpus, CorpusIndex
from ctxagent.corpus.ask import ask_corpus
from ctxagent.defaults import DEFAULT_ENGINE, DEFAULT_RECIPE, INTERACTIVE_MAX_SECONDS
from ctxagent.engines import Engine, get_engine
from ctxagent.errors import InputError
from ctxagent.loaders import load_document
from ctxagent.recipes import get_recipe, steps
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, AnswerEvent, Budget, Document, Event, PlanEvent

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
        on_event: Callable[[Event], None] | None = None,
        **recipe_options: Any,
    ) -> Answer:
        """Answer `question` about one or more documents (paths or Document objects), or across
        a whole `Corpus` (retrieval picks the documents, the recipe reads them; see ctxagent.corpus.ask).

        on_event: called, in this thread, with each PlanEvent, StepEvent and draft TokenEvent
        as the run goes (what `stream` yields); the returned Answer is the final word.

        One pipeline for every source: source (files | Corpus) -> recipe -> pages -> notes -> events.
        The graph, the CLI, the server and the batch runner all come through here or through the
        same step functions (ctxagent.recipes.steps).
        """
        question = check_question(question)
        name = recipe or self.recipe
        corpus = source if isinstance(source, (Corpus, CorpusIndex)) else None
        documents = [] if corpus is not None else load_sources(source)
        runner = None if corpus is not None else get_recipe(name, **recipe_options)
        defaulted = budget is None and self.default_time_limit
        if defaulted:
            log.info("time budget %g s, the default for interactive questions; Budget(max_seconds=None) lifts it", INTERACTIVE_MAX_SECONDS)
        ctx = RunContext(engine=self.engine, budget=budget or self.budget, on_event=on_event)
        if on_event is not None and name != "auto":
            on_event(PlanEvent(recipe=name, why="the recipe asked for"))
        try:
            if corpus is not None:  # retrieval picks the documents, the recipe reads them; pages set there
                answer = ask_corpus(ctx, corpus, question, recipe=name, **recipe_options)
            else:
                answer = steps.finish(run_recipe(runner, ctx, documents, question), documents)
        finally:
            ctx.trace._listener = None
        if defaulted and _shaped_by_time(answer):
            note = (
                f"the default time budget of {INTERACTIVE_MAX_SECONDS:g} s for interactive questions shaped this answer "
                "(see the trace's plan step); pass budget=Budget(max_seconds=None) (CLI: --max-seconds 0) for a slower, more thorough one"
            )
            answer = answer.model_copy(update={"notes": [*answer.notes, note]})
        return answer

    async def aask(self, source: Source | Sequence[Source], question: str, **options: Any) -> Answer:
        """`ask` without blocking the event loop (the run goes to a worker thread)."""
        return await asyncio.to_thread(self.ask, source, question, **options)

    def stream(self, source: Source | Sequence[Source], question: str, **options: Any) -> Iterator[Event]:
        """Yield PlanEvent, StepEvents and draft TokenEvents as the answer is worked out, then one AnswerEvent.

        TokenEvents are the model's draft (`draft=True`): the answer is checked against its
        citations afterwards and may be replaced by a verified quote or NOT FOUND, so show them
        as provisional and take the AnswerEvent as the answer. Errors are raised here.
        """
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                answer = self.ask(source, question, on_event=lambda e: events.put(("event", e)), **options)
                events.put(("answer", answer))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                events.put(("error", exc))

        threading.Thread(target=work, name="ctxagent-stream", daemon=True).start()
        while True:
            kind, item = events.get()
            if kind == "event":
                yield item
            elif kind == "answer":
                yield AnswerEvent(answer=item)
                return
            else:
                raise item

    async def astream(self, source: Source | Sequence[Source], question: str, **options: Any) -> AsyncIterator[Event]:
        """`stream` for asyncio: the same events, delivered without blocking the event loop."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def on_event(event: Event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        run = asyncio.ensure_future(asyncio.to_thread(self.ask, source, question, on_event=on_event, **options))
        try:
            while True:
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                # Events are queued on the loop before the run's result is, so none is left behind.
                while not events.empty():
                    yield events.get_nowait()
                yield AnswerEvent(answer=run.result())
                return
        finally:
            if not run.done():
                run.cancel()


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
    return check_documents([item if isinstance(item, Document) else load_document(item) for item in items])


def check_documents(documents: list[Document]) -> list[Document]:
    """Every document has text and its own id, so each citation names exactly one."""
    seen: set[str] = set()
    for doc in documents:
        if not doc.text.strip():
            raise InputError(f"{doc.id}: the document is empty (no text to ask about)")
        if doc.id in seen:
            raise InputError(f"two documents share the id {doc.id!r}; give each a distinct id so citations can name them")
        seen.add(doc.id)
    return documents
