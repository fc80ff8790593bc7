"""Recipes: plans that answer questions about documents longer than the context window.

    from ctxagent.recipes import get_recipe
    recipe = get_recipe("direct")

Add your own with `@ctxagent.recipes.register("name")` on a class implementing
`Recipe`, or through the `ctxagent.recipes` entry-point group.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ctxagent.defaults import DEFAULT_RECIPE
from ctxagent.errors import InputError
from ctxagent.registry import Registry

if TYPE_CHECKING:
    from ctxagent.recipes.base import Recipe

registry: Registry[Recipe] = Registry("recipe")
register = registry.register
registry.register_lazy("direct", "ctxagent.recipes.direct:DirectRecipe")
registry.register_lazy("auto", "ctxagent.recipes.auto:AutoRecipe")
registry.register_lazy("map_reduce", "ctxagent.recipes.map_reduce:MapReduceRecipe")
registry.register_lazy("recurrent", "ctxagent.recipes.recurrent:RecurrentRecipe")
registry.register_lazy("memory_tree", "ctxagent.recipes.memory_tree:MemoryTreeRecipe")
registry.register_lazy("retrieve_then_reason", "ctxagent.recipes.retrieve_then_reason:RetrieveThenReasonRecipe")
registry.register_lazy("agentic", "ctxagent.recipes.agentic:AgenticRecipe")
registry.register_lazy("compress_then_answer", "ctxagent.recipes.compress_then_answer:CompressThenAnswerRecipe")
# What map_reduce does today: score every sentence, answer from the best (no map step runs the model).
# The new name is accepted now; answers, traces and eval tables still say map_reduce (see docs/recipes.md).
registry.alias("evidence_scan", "map_reduce")


def get_recipe(name: str = DEFAULT_RECIPE, **options: Any) -> Recipe:
    """Build the recipe registered under `name` with its options; an option the recipe does not
    take raises InputError naming the ones it does."""
    cls = registry.get(name)
    check_options(name, cls, options)
    return cls(**options)


def recipe_options(cls: type) -> list[str] | None:
    """The options a recipe class takes (its constructor's keyword parameters); None when it
    passes any option on (`**options`), so none can be ruled out."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # a builtin or C-level constructor: cannot tell
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def check_options(name: str, cls: type, options: dict[str, Any]) -> None:
    valid = recipe_options(cls)
    unknown = sorted(set(options) - set(valid)) if valid is not None else []
    if unknown:
        takes = f"its options are {', '.join(valid)}" if valid else "it takes no options"
        raise InputError(f"recipe {name!r} has no option {', '.join(map(repr, unknown))}; {takes}")


__all__ = ["DEFAULT_RECIPE", "check_options", "get_recipe", "recipe_options", "register", "registry"]
