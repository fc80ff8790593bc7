"""`retrieve_then_reason`: retrieve candidate chunks, keep verified quotes, reason over them.

1. Retrieve: the document is cut into small chunks and indexed by a retriever
   (BM25, dense or hybrid); the question fetches the best `k`.
2. Extract: one batched call asks each retrieved chunk for the sentence that answers;
   a reply survives only if it really occurs in that chunk (string match).
3. Reason: one call answers from the verified sentences alone, cited with them.

The cheapest long-document recipe: its cost does not grow with the document (beyond
indexing, which costs no engine call), so it suits tight budgets and huge inputs. It
misses what the retriever misses; map_reduce reads everything.
"""

from __future__ import annotations

from typing import Sequence

from ctxagent.errors import BudgetExhausted, InputError
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.prompts import extract_prompt
from ctxagent.recipes.reading import EXTRACT_TOKENS, Facts, answer_from_facts, extract_facts, fit_chunks, partial_answer, window_room
from ctxagent.recipes.retrieval import ChunkIndex
from ctxagent.types import Answer, Document


@register("retrieve_then_reason")
class RetrieveThenReasonRecipe:
    """retriever: "bm25", "dense", "hybrid" or a registered name; k: chunks read; chunk_tokens: retrieval chunk size."""

    name = "retrieve_then_reason"

    def __init__(self, retriever: str = "hybrid", k: int = 4, chunk_tokens: int = 256) -> None:
        if k < 1:
            raise InputError(f"retrieve_then_reason needs k >= 1 chunks to read, got {k}")
        self.retriever, self.k, self.chunk_tokens = retriever, k, chunk_tokens

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        room = window_room(ctx, extract_prompt("", question), EXTRACT_TOKENS)
        chunks = fit_chunks(ctx, documents, room, self.chunk_tokens)
        index = ChunkIndex(self.retriever, chunks)
        hits = index.search(question, self.k)
        ctx.trace.add("retrieve", retriever=self.retriever, chunks=len(chunks), hits=[[chunks[i].doc_id, chunks[i].start, round(s, 4)] for i, s in hits])
        facts = Facts()
        try:
            for found in extract_facts(ctx, [chunks[i] for i, _ in hits], documents, question, step="extract"):
                facts.add(found)
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, facts, exc, 0, len(hits))
        return answer_from_facts(ctx, self.name, documents, question, facts)
