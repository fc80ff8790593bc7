"""`map_reduce`: score every sentence of the document, then answer from the best.

Map: every sentence of every chunk is scored against the question by BM25 and the
sentence encoder, and the best candidates by the engine's log-probs in one batched
call (evidence.py); the best become facts, cut from the source. Chains are followed
over the whole document (`Budget.max_hops`). Reduce: one call answers from the facts.
Two engine calls whatever the document's length, and every sentence is considered, so
it is the most thorough recipe; it costs an encoder pass over the whole document.
"""

from __future__ import annotations

from typing import Sequence

from ctxagent.defaults import EVIDENCE_SCAN_RERANK
from ctxagent.errors import BudgetExhausted
from ctxagent.recipes import register, steps
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.evidence import EvidenceSelector
from ctxagent.recipes.options import choices_of
from ctxagent.recipes.reading import Facts, quote_answer
from ctxagent.types import Answer, Document


@register("map_reduce")
class MapReduceRecipe:
    """chunk_tokens: cap on chunk size (default: as large as the window allows); selector: how
    evidence is scored (the default lets the engine re-rank more candidates than elsewhere)."""

    name = "map_reduce"

    def __init__(self, chunk_tokens: int | None = None, selector: EvidenceSelector | None = None) -> None:
        self.chunk_tokens = chunk_tokens
        self.selector = selector or EvidenceSelector(rerank=EVIDENCE_SCAN_RERANK)

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        chunks, room = steps.read_chunks(ctx, documents, question, self.chunk_tokens)
        ctx.trace.add("chunk", chunks=len(chunks), tokens=sum(c.n_tokens for c in chunks), room=room)
        facts, pool = Facts(), self.selector.pool(chunks)
        try:
            steps.select_evidence(ctx, self.selector, pool, documents, question, facts, step="map")
        except BudgetExhausted as exc:
            return steps.partial(ctx, self.name, question, facts, exc, 0, len(chunks))
        if facts and ctx.calls_left() == 0 and not choices_of(question):  # a choice question still gets its option (steps.answer)
            return quote_answer(ctx, self.name, facts, ["no engine call left for the reduce step; the answer is the best verified quote"], partial=True)
        return steps.answer(ctx, self.name, documents, question, facts)
