"""`auto`: pick a recipe from the documents' length, the context window and the budget.

The rules, in order (the Trace's "plan" step records which one fired and why):

1. The documents fit the window: `direct` (one call, reads everything).
2. A memory tree for these documents is already cached: `memory_tree` (reading
   costs a few short calls; the tree was paid for earlier).
3. Reading every chunk fits the Budget (tokens, calls, and seconds at the engine's
   measured or assumed speed) and the documents are at most `MAP_REDUCE_WINDOWS`
   windows long: `map_reduce` (two calls, reads everything).
4. Otherwise: `retrieve_then_reason`, whose cost does not grow with the document.

So `auto` is as thorough as the budget allows and never plans a run it knows will
not fit.
"""

from __future__ import annotations

from typing import Sequence

from ctxagent.recipes import get_recipe, register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.reading import EXTRACT_TOKENS
from ctxagent.types import Answer, Document

# Below this share of the window the whole document goes in the prompt.
DIRECT_FILL = 0.8
# Beyond this many windows, reading everything is not worth it; retrieve instead.
MAP_REDUCE_WINDOWS = 64
# Per chunk prompt overhead (instructions, question twice, template) in tokens.
CHUNK_OVERHEAD = 120
# Prefill speed assumed when the engine does not say (tokens/s; SmolLM2-135M on 2 CPU cores).
ASSUMED_TOKENS_PER_SECOND = 300.0
# Characters per token, to estimate huge documents without tokenising them all.
CHARS_PER_TOKEN = 4


def _has_retrievers() -> bool:
    try:
        from ctxagent.retrievers import get_retriever  # noqa: F401
    except ImportError:
        return False
    return True


@register("auto")
class AutoRecipe:
    name = "auto"

    def choose(self, ctx: RunContext, documents: Sequence[Document], question: str) -> tuple[str, str]:
        """(recipe name, why); the graph's plan node calls this too."""
        window = ctx.engine.context_window - ctx.budget.max_new_tokens
        chars = sum(len(d.text) for d in documents)
        if chars > window * 16 * MAP_REDUCE_WINDOWS:
            tokens, counted = chars // CHARS_PER_TOKEN, "estimated"
        else:
            tokens, counted = sum(ctx.count_tokens(d.text) for d in documents), "counted"
        if tokens <= DIRECT_FILL * window:
            return "direct", f"{tokens} document tokens fit in {DIRECT_FILL:.0%} of the {window}-token window"
        size = f"{tokens:,} document tokens ({counted}) are {tokens / window:.1f}x the {window}-token window"
        from ctxagent.recipes.memory_tree import MemoryTreeRecipe

        tree = MemoryTreeRecipe()
        if tokens <= MAP_REDUCE_WINDOWS * window and tree.cached(ctx, documents, question):
            return "memory_tree", f"{size}; a memory tree of these documents is cached, so navigating it costs a few short calls"
        chunks = max(1, round(tokens / (0.75 * ctx.engine.context_window)))
        map_tokens = tokens + chunks * (CHUNK_OVERHEAD + EXTRACT_TOKENS) + 600 + ctx.budget.max_new_tokens
        speed = float(getattr(ctx.engine, "tokens_per_second", 0) or ASSUMED_TOKENS_PER_SECOND)
        map_seconds = map_tokens / speed
        b = ctx.budget
        blockers = []
        if tokens > MAP_REDUCE_WINDOWS * window:
            blockers.append(f"longer than {MAP_REDUCE_WINDOWS} windows")
        if b.max_tokens is not None and map_tokens > b.max_tokens:
            blockers.append(f"reading all ~{chunks} chunks needs ~{map_tokens:,} tokens > max_tokens {b.max_tokens:,}")
        if b.max_calls is not None and b.max_calls < 2:
            blockers.append(f"max_calls {b.max_calls} < the 2 calls map_reduce needs")
        if b.max_seconds is not None and map_seconds > b.max_seconds:
            blockers.append(f"reading all at ~{speed:.0f} tokens/s needs ~{map_seconds:.0f}s > max_seconds {b.max_seconds:g}")
        if not blockers:
            return "map_reduce", f"{size}; reading all ~{chunks} chunks in one batched call (~{map_tokens:,} tokens) fits the budget"
        if _has_retrievers():
            return "retrieve_then_reason", f"{size}; map_reduce ruled out ({'; '.join(blockers)}), so retrieve the best chunks and read only those"
        return "map_reduce", f"{size}; map_reduce would not fit ({'; '.join(blockers)}) but no retriever is installed; it reads what the budget allows"

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        choice, why = self.choose(ctx, documents, question)
        ctx.trace.add("plan", recipe=choice, why=why)
        answer = get_recipe(choice).run(ctx, documents, question)
        return answer.model_copy(update={"recipe": f"auto:{choice}"})
