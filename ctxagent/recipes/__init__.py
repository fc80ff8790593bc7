"""Recipes: plans that answer questions about documents longer than the context window.

    from ctxagent.recipes import get_recipe
    recipe = get_recipe("direct")

Add your own with `@ctxagent.recipes.register("name")` on a class implementing
`Recipe`, or through the `ctxagent.recipes` entry-point group.
"""

from __future__ import annotations

from typing import Any

from ctxagent.defaults import DEFAULT_RECIPE
from ctxagent.registry import Registry

registry: Registry[Any] = Registry("recipe")
register = registry.register
registry.register_lazy("direct", "ctxagent.recipes.direct:DirectRecipe")
registry.register_lazy("auto", "ctxagent.recipes.auto:AutoRecipe")
registry.register_lazy("map_reduce", "ctxagent.recipes.map_reduce:MapReduceRecipe")
registry.register_lazy("recurrent", "ctxagent.recipes.recurrent:RecurrentRecipe")
registry.register_lazy("memory_tree", "ctxagent.recipes.memory_tree:MemoryTreeRecipe")
registry.register_lazy("retrieve_then_reason", "ctxagent.recipes.retrieve_then_reason:RetrieveThenReasonRecipe")
registry.register_lazy("agentic", "ctxagent.recipes.agentic:AgenticRecipe")
registry.register_lazy("compress_then_answer", "ctxagent.recipes.compress_then_answer:CompressThenAnswerRecipe")


def get_recipe(name: str = DEFAULT_RECIPE, **options: Any) -> Any:
    """Build the recipe registered under `name` with its options."""
    return registry.get(name)(**options)


__all__ = ["DEFAULT_RECIPE", "get_recipe", "register", "registry"]
