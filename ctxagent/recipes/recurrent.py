"""`recurrent`: read the document chunk by chunk, carrying a few verified notes forward.

Each chunk's sentences are scored (evidence.py) against the question, and against the
notes' open ends: the names and rare words the notes bring in that the question lacks
(`bridge_terms`), so a chain can be followed in reading order (a note names Captain
Harwood; a later chunk says where Captain Harwood lives). Sentences above the
selector's floor join the notes, which are bounded (the most relevant few, within a token cap). When a
note is added the model is asked to answer from the notes; when that answer is
supported by them the recipe stops early, so a fact near the start costs a few calls,
not the whole document. At the end (or the stop) open chains are also followed back
through the chunks already read, so a link found before its start is not lost.
Engine calls: one scoring call per chunk that holds a candidate, plus answers.
"""

from __future__ import annotations

from typing import Sequence

from tqdm.auto import tqdm

from ctxagent.errors import BudgetExhausted
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.evidence import EvidenceSelector, SentencePool, follow_chain
from ctxagent.recipes.prompts import extract_prompt
from ctxagent.recipes.reading import EXTRACT_TOKENS, Facts, answer_from_facts, confirmed, fit_chunks, partial_answer, window_room
from ctxagent.types import Answer, Document


@register("recurrent")
class RecurrentRecipe:
    """max_notes: notes carried between chunks; note_tokens: their token cap; chunk_tokens: chunk size cap."""

    name = "recurrent"

    def __init__(
        self,
        max_notes: int = 3,
        note_tokens: int = 160,
        chunk_tokens: int | None = None,
        early_stop: bool = True,
        selector: EvidenceSelector | None = None,
    ) -> None:
        self.max_notes = max_notes
        self.note_tokens = note_tokens
        self.chunk_tokens = chunk_tokens
        self.early_stop = early_stop
        self.selector = selector or EvidenceSelector(keep=2)

    def _notes(self, ctx: RunContext, facts: Facts) -> list[str]:
        """The most relevant facts that fit the note cap (a long sentence is cut to fit)."""
        notes, room = [], self.note_tokens
        for fact in facts.best(self.max_notes):
            cost = ctx.count_tokens(fact.text) + 2
            if cost > room:
                continue
            notes.append(fact.text)
            room -= cost
        return notes

    def _finish(self, ctx: RunContext, pool: SentencePool, documents: Sequence[Document], question: str, facts: Facts, read: int) -> Answer:
        follow_chain(ctx, self.selector, pool, documents, question, facts, max_hops=ctx.budget.max_hops, fetch=lambda query: list(range(read)))
        return answer_from_facts(ctx, self.name, documents, question, facts)

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        room = window_room(ctx, extract_prompt("", question, ["-"]), EXTRACT_TOKENS) - self.note_tokens
        chunks = fit_chunks(ctx, documents, room, self.chunk_tokens)
        ctx.trace.add("chunk", chunks=len(chunks), tokens=sum(c.n_tokens for c in chunks), room=room)
        facts, pool = Facts(), self.selector.pool(chunks)
        read = 0
        try:
            for i, chunk in enumerate(tqdm(chunks, desc="recurrent reading", unit="chunk", disable=None, leave=False)):
                before = len(facts)
                facts.add(self.selector.select(ctx, pool, documents, question, positions=[i], step="read", chunk=i))
                # The notes' open ends (names the question lacks) are looked for in this chunk too.
                if ctx.budget.max_hops:
                    follow_chain(ctx, self.selector, pool, documents, question, facts, max_hops=1, fetch=lambda query: [i], step="read:link")
                read += 1
                if len(facts) > before and self.early_stop:
                    answer = self._finish(ctx, pool, documents, question, facts, read)
                    if confirmed(answer):
                        ctx.trace.add("stop", why=f"answer found in chunk {i} and supported by the verified notes", read=read, total=len(chunks))
                        return answer
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, question, facts, exc, read, len(chunks))
        try:
            return self._finish(ctx, pool, documents, question, facts, read)
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, question, facts, exc, read, len(chunks))
