"""`map_reduce`: ask every chunk at once, then answer from what the chunks said.

Map: one batched engine call asks each chunk for the sentence that answers the
question (or NONE); each reply is checked against its chunk, so only sentences that
really occur in the source survive. Reduce: one more call answers from the verified
sentences. Two engine calls whatever the document's length, and every chunk is read,
so it is the most thorough recipe per call; its cost in tokens is the whole document.
"""

from __future__ import annotations

from typing import Sequence

from ctxagent.errors import BudgetExhausted
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.prompts import extract_prompt, facts_answer_prompt
from ctxagent.recipes.reading import (
    EXTRACT_TOKENS,
    TEMPLATE_SLACK,
    Facts,
    answer_from_facts,
    extract_facts,
    fit_chunks,
    partial_answer,
    quote_answer,
    window_room,
)
from ctxagent.types import Answer, Document


@register("map_reduce")
class MapReduceRecipe:
    """chunk_tokens: cap on chunk size (default: as large as the window allows)."""

    name = "map_reduce"

    def __init__(self, chunk_tokens: int | None = None) -> None:
        self.chunk_tokens = chunk_tokens

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        room = window_room(ctx, extract_prompt("", question), EXTRACT_TOKENS)
        chunks = fit_chunks(ctx, documents, room, self.chunk_tokens)
        ctx.trace.add("chunk", chunks=len(chunks), tokens=sum(c.n_tokens for c in chunks), room=room)
        facts = Facts()
        # Under a token budget, map only the chunks that fit, keeping room for the reduce step.
        take, notes = len(chunks), []
        left = ctx.tokens_left()
        if left is not None:
            reserve = ctx.prompt_tokens(facts_answer_prompt([""] * 3, question)) + 3 * 60 + ctx.budget.max_new_tokens + TEMPLATE_SLACK
            frame = ctx.prompt_tokens(extract_prompt("", question)) + EXTRACT_TOKENS
            spent, take = 0, 0
            for chunk in chunks:
                if spent + frame + chunk.n_tokens > left - reserve:
                    break
                spent += frame + chunk.n_tokens
                take += 1
            if take < len(chunks):
                notes.append(f"the token budget ({ctx.budget.max_tokens}) covers {take} of {len(chunks)} chunks; the rest were not read")
        if take == 0:
            exc = BudgetExhausted("tokens", ctx.budget.max_tokens or 0, ctx.usage.total_tokens)
            return partial_answer(ctx, self.name, facts, exc, 0, len(chunks))
        try:
            for found in extract_facts(ctx, chunks[:take], documents, question, step="map"):
                facts.add(found)
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, facts, exc, 0, len(chunks))
        if ctx.calls_left() == 0:
            return quote_answer(ctx, self.name, facts, [*notes, "no engine call left for the reduce step; the answer is the best verified quote"], partial=True)
        answer = answer_from_facts(ctx, self.name, documents, question, facts, notes)
        return answer.model_copy(update={"partial": answer.partial or take < len(chunks)})
