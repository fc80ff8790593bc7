"""`recurrent`: read the document chunk by chunk, carrying a few verified notes forward.

Each step shows the model the question, the notes so far (sentences verified in
earlier chunks) and the next chunk, and asks for the sentence that answers. Verified
sentences join the notes, which are bounded (the most relevant few, within a token
cap) so every prompt fits the window however long the document is. Once a note
exists the model is asked to answer from the notes; when that answer is supported by
them the recipe stops early, so a fact near the start costs a few calls, not the
whole document. One call per chunk: slower than map_reduce on a batching engine, but
it can stop early and it connects facts across chunks.
"""

from __future__ import annotations

from typing import Sequence

from tqdm.auto import tqdm

from ctxagent.errors import BudgetExhausted
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.prompts import extract_prompt
from ctxagent.recipes.reading import EXTRACT_TOKENS, Facts, answer_from_facts, confirmed, extract_facts, fit_chunks, partial_answer, window_room
from ctxagent.types import Answer, Document


@register("recurrent")
class RecurrentRecipe:
    """max_notes: notes carried between chunks; note_tokens: their token cap; chunk_tokens: chunk size cap."""

    name = "recurrent"

    def __init__(self, max_notes: int = 3, note_tokens: int = 160, chunk_tokens: int | None = None, early_stop: bool = True) -> None:
        self.max_notes = max_notes
        self.note_tokens = note_tokens
        self.chunk_tokens = chunk_tokens
        self.early_stop = early_stop

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

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        room = window_room(ctx, extract_prompt("", question, ["-"]), EXTRACT_TOKENS) - self.note_tokens
        chunks = fit_chunks(ctx, documents, room, self.chunk_tokens)
        ctx.trace.add("chunk", chunks=len(chunks), tokens=sum(c.n_tokens for c in chunks), room=room)
        facts = Facts()
        read = 0
        try:
            for i, chunk in enumerate(tqdm(chunks, desc="recurrent reading", unit="chunk", disable=None, leave=False)):
                [found] = extract_facts(ctx, [chunk], documents, question, step="read", notes=self._notes(ctx, facts), first_index=i, chunk=i)
                read += 1
                if facts.add(found) and self.early_stop:
                    answer = answer_from_facts(ctx, self.name, documents, question, facts)
                    if confirmed(answer):
                        ctx.trace.add("stop", why=f"answer found in chunk {i} and supported by the verified notes", read=read, total=len(chunks))
                        return answer
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, facts, exc, read, len(chunks))
        return answer_from_facts(ctx, self.name, documents, question, facts)
