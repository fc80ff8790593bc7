"""The steps every question runs, written once: plan, fit, retrieve, select evidence, compress,
answer, partial answer, finish.

The recipes are built from these functions, and so are the LangGraph nodes (graph/nodes.py, thin
adapters from state to step) and corpus questions (corpus/ask.py): there is one pipeline, not one
per entry point, so the SDK, the graph, the CLI, the server and a corpus give the same answer to
the same question. Each step reaches the engine only through the RunContext, so budgets hold
across steps whichever entry point strings them together.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ctxagent.defaults import TEMPLATE_SLACK
from ctxagent.engines.base import TokenScores
from ctxagent.errors import BudgetExhausted
from ctxagent.pages import annotate_pages
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.direct import Fit, answer_from, fit_documents
from ctxagent.recipes.prompts import answer_prompt, extract_prompt
from ctxagent.recipes.reading import EXTRACT_TOKENS, Facts, answer_from_facts, fit_chunks, partial_answer, window_room
from ctxagent.types import Answer, Chunk, Document

__all__ = [
    "ContextScorer",
    "Fit",
    "Retrieval",
    "RetrievalCache",
    "answer",
    "answer_context",
    "answer_room",
    "compress",
    "compress_chunks",
    "extraction_room",
    "finish",
    "fit",
    "partial",
    "plan",
    "read_chunks",
    "retrieval",
    "retrieve",
    "select_evidence",
]

# The direct recipe's reading step: as much of the documents as fits the window.
fit = fit_documents
# The long-document recipes' last step: one call answers from the verified facts alone.
answer = answer_from_facts
# What a recipe says when the budget ran out mid-way: the best facts found so far, flagged partial.
partial = partial_answer


def answer_context(ctx: RunContext, recipe: str, fit: Fit, documents: Sequence[Document], question: str) -> Answer:
    """Answer over fitted text (fit or compress), citing the source sentences of its regions;
    a budget that runs out here gives a partial Answer, as run_recipe would."""
    try:
        reply = answer_from(ctx, fit, documents, question)
    except BudgetExhausted as exc:
        ctx.trace.add("budget_exhausted", axis=exc.axis, limit=exc.limit)
        return ctx.answer("", recipe=recipe, partial=True, notes=[f"{exc}; no answer was reached. Raise the budget or pick a cheaper recipe."])
    return ctx.answer(reply.text, recipe=recipe, citations=reply.citations, notes=[*fit.notes, *reply.notes], basis=reply.basis)


def plan(ctx: RunContext, documents: Sequence[Document], question: str) -> tuple[str, dict[str, Any], str]:
    """What `auto` would run, with its options and why (recorded as the trace's plan step)."""
    from ctxagent.recipes.auto import AutoRecipe

    recipe, options, why = AutoRecipe().choose(ctx, documents, question)
    ctx.trace.add("plan", recipe=recipe, why=why)
    return recipe, options, why


def finish(answer: Answer, documents: Sequence[Document]) -> Answer:
    """The last step of every entry point: PDF page numbers on the citations."""
    return annotate_pages(answer, documents)


# -- chunks and retrieval -------------------------------------------------------------------
def extraction_room(ctx: RunContext, question: str) -> int:
    """Tokens of text that fit one extraction prompt: the size chunks are cut to for reading."""
    return window_room(ctx, extract_prompt("", question), EXTRACT_TOKENS)


def read_chunks(ctx: RunContext, documents: Sequence[Document], question: str, chunk_tokens: int | None) -> tuple[list[Chunk], int]:
    """Every document cut into chunks that fit an extraction prompt (and `chunk_tokens`), and that room."""
    room = extraction_room(ctx, question)
    return fit_chunks(ctx, documents, room, chunk_tokens), room


@dataclass
class Retrieval:
    """The documents cut into chunks that fit an extraction prompt, and a retriever over them."""

    retriever: str
    chunks: list[Chunk]
    index: Any  # recipes.retrieval.ChunkIndex

    def position(self, chunk: Chunk) -> int:
        return self.index.position[(chunk.doc_id, chunk.index)]

    def fetch(self, k: int) -> Callable[[str], list[int]]:
        """For follow_chain: the positions of the best `k` chunks for a follow-up query."""
        return lambda query: [i for i, _ in self.index.search(query, k)]


class RetrievalCache:
    """The last few Retrievals by documents and settings, so steps run as separate graph nodes
    (retrieve, then extract) chunk and index once. Bounded: the oldest is dropped."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        # key -> (what the key names by id(), kept alive so the id is not reused meanwhile; the Retrieval)
        self._items: OrderedDict[tuple[Any, ...], tuple[Any, Retrieval]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: tuple[Any, ...], build: Callable[[], Retrieval], owner: Any = None) -> Retrieval:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][1]
        built = build()
        with self._lock:
            self._items[key] = (owner, built)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return built


def retrieval(
    ctx: RunContext, documents: Sequence[Document], question: str, retriever: str, chunk_tokens: int | None, cache: RetrievalCache | None = None
) -> Retrieval:
    """Chunk the documents to fit the extraction prompt and index them with `retriever`."""
    from ctxagent.recipes.retrieval import ChunkIndex

    room = extraction_room(ctx, question)

    def build() -> Retrieval:
        chunks = fit_chunks(ctx, documents, room, chunk_tokens)
        return Retrieval(retriever, chunks, ChunkIndex(retriever, chunks))

    if cache is None:
        return build()
    key = (id(ctx.engine), tuple(d.id for d in documents), tuple(d.content_hash for d in documents), room, chunk_tokens, retriever)
    return cache.get_or_build(key, build, owner=ctx.engine)


def retrieve(ctx: RunContext, found: Retrieval, question: str, k: int) -> list[tuple[int, float]]:
    """(position, score) of the best `k` chunks for the question, recorded as the retrieve step."""
    hits = found.index.search(question, k)
    chunks = found.chunks
    ctx.trace.add("retrieve", retriever=found.retriever, chunks=len(chunks), hits=[[chunks[i].doc_id, chunks[i].start, round(s, 4)] for i, s in hits])
    return hits


# -- evidence -------------------------------------------------------------------------------
def select_evidence(
    ctx: RunContext,
    selector: Any,
    pool: Any,
    documents: Sequence[Document],
    question: str,
    facts: Facts,
    *,
    step: str,
    positions: Sequence[int] | None = None,
    fetch: Callable[[str], Sequence[int] | None] | None = None,
) -> None:
    """Score the sentences (of the chunks at `positions`, or all) and add the best to `facts`, then
    follow open chains up to `Budget.max_hops` (`fetch` names the chunks a follow-up searches;
    None: every chunk). Raises BudgetExhausted with what was found so far left in `facts`."""
    from ctxagent.recipes.evidence import follow_chain

    facts.add(selector.select(ctx, pool, documents, question, positions=positions, step=step))
    if fetch is None:
        follow_chain(ctx, selector, pool, documents, question, facts, max_hops=ctx.budget.max_hops)
    else:
        follow_chain(ctx, selector, pool, documents, question, facts, max_hops=ctx.budget.max_hops, fetch=fetch)


# -- compression ----------------------------------------------------------------------------
def answer_room(ctx: RunContext, question: str) -> int:
    """Tokens of text that fit the answer prompt, with the answer's own tokens kept free."""
    return ctx.engine.context_window - ctx.budget.max_new_tokens - ctx.prompt_tokens(answer_prompt("", question)) - TEMPLATE_SLACK


class ContextScorer:
    """A compressor's model calls, routed through the RunContext so they count against the Budget."""

    def __init__(self, ctx: RunContext, step: str) -> None:
        self.ctx, self.step = ctx, step

    def count_tokens(self, text: str) -> int:
        return self.ctx.count_tokens(text)

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        return self.ctx.score(texts, contexts, step=self.step)


def compress(ctx: RunContext, chunks: Sequence[Chunk], question: str, compressor: Any, *, ratio: float | None = None, options: dict[str, Any] | None = None) -> Any:
    """Shrink `chunks` to what matters for the question and fits the answer prompt, with a registered
    compressor (by name, scoring through the RunContext) or a Compressor instance; recorded as the
    compress step. Returns the compressor's Compressed (text, source spans, citations_for)."""
    from ctxagent.compressors import get_compressor

    began = time.perf_counter()
    room = answer_room(ctx, question)
    if isinstance(compressor, str):
        compressor = get_compressor(compressor, scorer=ContextScorer(ctx, f"compress:{compressor}"), **(options or {}))
    compressed = compressor.compress(list(chunks), question, budget=room + ctx.count_tokens(question), ratio=ratio)
    ctx.trace.add(
        "compress",
        seconds=round(time.perf_counter() - began, 3),
        method=compressed.method,
        original_tokens=compressed.original_tokens,
        compressed_tokens=compressed.compressed_tokens,
        ratio=compressed.ratio,
        spans=len(compressed.spans),
    )
    return compressed


def compress_chunks(ctx: RunContext, documents: Sequence[Document], chunk_tokens: int) -> list[Chunk]:
    """The documents cut for a compressor to rank: chunks of at most a quarter of the window."""
    from ctxagent.chunking import chunk_document

    size = max(32, min(chunk_tokens, ctx.engine.context_window // 4))
    return [c for doc in documents for c in chunk_document(doc, ctx.count_tokens, max_tokens=size)]
