"""`direct`: put the document in the prompt and ask; truncate, and say so, when it does not fit.

The baseline every other recipe is measured against, and the right choice
whenever the document fits the context window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ctxagent.chunking import prefix_within
from ctxagent.citations import ground_answer
from ctxagent.engines.base import SamplingParams
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.prompts import answer_prompt, document_block
from ctxagent.types import Answer, Citation, Document

# Chat-template tokens around the messages, plus a margin for tokenisation at the joins.
TEMPLATE_SLACK = 48


@dataclass
class Fit:
    """What of the documents goes in the prompt: the text, the source spans it came from, and notes on truncation."""

    context: str
    regions: list[tuple[str, int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fit_documents(ctx: RunContext, documents: Sequence[Document], question: str) -> Fit:
    """Fit as much of each document as the window (and token budget) allows, with the answer prompt around it."""
    max_new = ctx.budget.max_new_tokens
    available = ctx.engine.context_window - max_new - ctx.prompt_tokens(answer_prompt("", question)) - TEMPLATE_SLACK
    if ctx.budget.max_tokens is not None:
        available = min(available, ctx.budget.max_tokens - max_new - TEMPLATE_SLACK - ctx.usage.total_tokens)
    many = len(documents) > 1
    blocks: list[str] = []
    regions: list[tuple[str, int, int]] = []
    notes: list[str] = []
    for doc in documents:
        label_cost = ctx.count_tokens(document_block(doc.id, "", many)) + 2 if many else 0
        room = available - label_cost
        cut = prefix_within(doc.text, ctx.count_tokens, room) if room > 0 else 0
        if cut < len(doc.text):
            share = 100.0 * cut / max(1, len(doc.text))
            notes.append(
                f"{doc.id}: read the first {cut:,} of {len(doc.text):,} characters ({share:.1f}%), "
                f"all that fits in the {ctx.engine.context_window}-token window; "
                "use recipe 'auto' or a chunking recipe to read the whole document"
            )
        if cut == 0:
            continue
        blocks.append(document_block(doc.id, doc.text[:cut], many))
        regions.append((doc.id, 0, cut))
        available -= label_cost + ctx.count_tokens(doc.text[:cut]) + 2
    ctx.trace.add("fit", documents=len(documents), truncated=bool(notes), regions=[list(r) for r in regions])
    return Fit(context="\n\n".join(blocks), regions=regions, notes=notes)


def answer_from(ctx: RunContext, fit: Fit, documents: Sequence[Document], question: str) -> tuple[str, list[Citation]]:
    """Ask the question over the fitted text; cite the source sentences that support the answer."""
    params = SamplingParams(max_new_tokens=ctx.budget.max_new_tokens)
    [completion] = ctx.generate([answer_prompt(fit.context, question)], params, step="answer")
    return completion.text, ground_answer(completion.text, question, documents, fit.regions)


@register("direct")
class DirectRecipe:
    name = "direct"

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        fit = fit_documents(ctx, documents, question)
        text, citations = answer_from(ctx, fit, documents, question)
        return ctx.answer(text, recipe=self.name, citations=citations, notes=fit.notes)
