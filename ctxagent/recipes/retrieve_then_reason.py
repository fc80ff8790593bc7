"""`retrieve_then_reason`: retrieve candidate chunks, select evidence sentences, reason over them.

1. Retrieve: the document is cut into small chunks and indexed by a retriever
   (BM25, dense or hybrid); the question fetches the best `k`.
2. Select: the sentences of the retrieved chunks are scored (BM25, sentence encoder,
   and the engine's log-probs for the best few, see evidence.py); the best become facts,
   cut from the source, so nothing depends on the model copying text.
3. Follow chains: when the best facts name something the question does not (a person,
   a place) that no other fact connects, that is searched for and the sentence that
   continues the chain is added, up to `Budget.max_hops` rounds.
4. Reason: one call answers from the facts alone, cited with them.

The cheapest long-document recipe: its cost does not grow with the document (beyond
indexing, which costs no engine call), so it suits tight budgets and huge inputs. It
misses what the retriever misses; map_reduce reads everything.
"""

from __future__ import annotations

from typing import Sequence

from ctxagent.defaults import RETRIEVE_CHUNK_TOKENS, RETRIEVE_K, RETRIEVER
from ctxagent.errors import BudgetExhausted, InputError
from ctxagent.recipes import register, steps
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.evidence import EvidenceSelector, feedback_terms
from ctxagent.recipes.reading import Facts
from ctxagent.types import Answer, Document


@register("retrieve_then_reason")
class RetrieveThenReasonRecipe:
    """retriever: "bm25", "dense", "hybrid" or a registered name; k: chunks read; chunk_tokens: retrieval
    chunk size; selector: how evidence sentences are scored and kept (EvidenceSelector)."""

    name = "retrieve_then_reason"

    def __init__(
        self,
        retriever: str = RETRIEVER,
        k: int = RETRIEVE_K,
        chunk_tokens: int = RETRIEVE_CHUNK_TOKENS,
        selector: EvidenceSelector | None = None,
        feedback: bool = False,
    ) -> None:
        if k < 1:
            raise InputError(f"retrieve_then_reason needs k >= 1 chunks to read, got {k}")
        self.retriever, self.k, self.chunk_tokens = retriever, k, chunk_tokens
        self.selector = selector or EvidenceSelector()
        self.feedback = feedback  # pseudo-relevance feedback when the question shares few words with the text

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        found = steps.retrieval(ctx, documents, question, self.retriever, self.chunk_tokens)
        hits = steps.retrieve(ctx, found, question, self.k)
        facts, pool = Facts(), self.selector.pool(found.chunks)
        positions = [i for i, _ in hits]
        if self.feedback and float(max(pool.lexical(question)[pool.in_chunks(positions)], default=0.0)) < self.selector.low_overlap:
            terms = feedback_terms(pool, question, positions)
            more = [i for i, _ in found.index.search(f"{question} {' '.join(terms)}", self.k) if i not in positions]
            ctx.trace.add("feedback", terms=terms, chunks=more)
            positions += more
        try:
            steps.select_evidence(ctx, self.selector, pool, documents, question, facts, step="select", positions=positions, fetch=found.fetch(self.k))
        except BudgetExhausted as exc:
            return steps.partial(ctx, self.name, question, facts, exc, len(hits), len(hits))
        return steps.answer(ctx, self.name, documents, question, facts)
