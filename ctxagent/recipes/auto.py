"""`auto`: pick a recipe from the documents' length, the context window and the budget.

The Trace records the choice and why, so a user can see and override it.
"""

from __future__ import annotations

from typing import Sequence

from ctxagent.recipes import get_recipe, register
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, Document

# Below this share of the window the whole document goes in the prompt.
DIRECT_FILL = 0.8


@register("auto")
class AutoRecipe:
    name = "auto"

    def choose(self, ctx: RunContext, documents: Sequence[Document], question: str) -> tuple[str, str]:
        window = ctx.engine.context_window - ctx.budget.max_new_tokens
        # Counting a huge document costs time; characters bound tokens well enough to decide.
        chars = sum(len(d.text) for d in documents)
        if chars > window * 16:
            return "direct", f"{chars:,} characters exceed the {window}-token window many times over; no long-document recipe is registered yet"
        tokens = sum(ctx.count_tokens(d.text) for d in documents)
        if tokens <= DIRECT_FILL * window:
            return "direct", f"{tokens} document tokens fit in {DIRECT_FILL:.0%} of the {window}-token window"
        return "direct", f"{tokens} document tokens exceed the {window}-token window; no long-document recipe is registered yet"

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        choice, why = self.choose(ctx, documents, question)
        ctx.trace.add("plan", recipe=choice, why=why)
        answer = get_recipe(choice).run(ctx, documents, question)
        return answer.model_copy(update={"recipe": f"auto:{choice}"})
