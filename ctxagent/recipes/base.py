"""The Recipe protocol: a plan for answering a question about documents.

A recipe is a class with a `name` and a `run(ctx, documents, question)` that
returns an Answer. It reaches the engine only through `ctx` (see context.py), so
budgets and usage are enforced in one place. Register your own with
`@ctxagent.recipes.register("name")`.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from ctxagent.cancel import checkpoint_scope
from ctxagent.errors import BudgetExhausted
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, Document


@runtime_checkable
class Recipe(Protocol):
    name: str

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        """Answer `question` from `documents`; raise BudgetExhausted or return a partial Answer when out of budget."""
        ...


def run_recipe(recipe: Recipe, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
    """Run a recipe; a budget that runs out mid-way still yields an Answer, flagged partial.

    Recipes that can say something useful with what they read so far catch
    BudgetExhausted themselves; this is the safety net for the rest.
    """
    try:
        with checkpoint_scope(ctx.raise_if_stopped):  # long non-engine steps stop in time too
            return recipe.run(ctx, documents, question)
    except BudgetExhausted as exc:
        ctx.trace.add("budget_exhausted", axis=exc.axis, limit=exc.limit)
        return ctx.answer("", recipe=recipe.name, partial=True, notes=[f"{exc}; no answer was reached. Raise the budget or pick a cheaper recipe."])
