"""`auto`: the most thorough plan that fits the time and token budget, at the engine's measured speed.

The plan, in order (the Trace's "plan" step records the rule that fired, the speed
and effective context used, and the estimated cost of every candidate):

1. The documents fit the model's *effective* context (what it really reads well,
   see ctxagent.engines.reach; not the nominal window): `direct`.
2. A memory tree for these documents is already cached: `memory_tree`.
3. Otherwise the candidates, most thorough first, each costed in tokens, engine
   calls and seconds (prefill and decode at the engine's measured speed, see
   ctxagent.engines.speed, plus indexing and the sentence encoder; see `Costing`):
   `map_reduce` (considers every sentence; chunks sized to the effective context) >
   `retrieve_then_reason` (k=4, then k=2) > `direct` truncated to the window.
   The first that fits every axis of the Budget runs. If none fits, the cheapest
   runs and the trace says so.

Seconds are planned against 80% of what is left of `max_seconds`, since estimates
are estimates. With no time limit (batch, eval) only tokens, calls and the
`MAP_REDUCE_WINDOWS` cap decide.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ctxagent.chunking import estimate_tokens
from ctxagent.defaults import EVIDENCE_SCAN_RERANK, RERANK, RETRIEVE_CHUNK_TOKENS, RETRIEVE_K
from ctxagent.engines.reach import Reach, effective_context
from ctxagent.engines.speed import EngineSpeed, engine_speed
from ctxagent.recipes import get_recipe, register
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, Document

# Below this share of the effective context the whole document goes in the prompt.
DIRECT_FILL = 0.9
# Beyond this many windows, reading everything is not worth it; retrieve instead.
MAP_REDUCE_WINDOWS = 64
# Prompt frame (instructions, question, template) around a document or the answer's facts (tokens).
PROMPT_FRAME = 120
ANSWER_FRAME = 600
# The final answer is usually shorter than its cap: planned decode length (tokens).
ANSWER_EXPECTED = 96
# Evidence selection (recipes/evidence.py): the engine scores the recipes' re-rank count of candidate
# sentences (defaults.py), each read as about this many tokens (sentence + question + frame), once per
# hop and once more.
MAP_REDUCE_RERANK, RETRIEVE_RERANK = EVIDENCE_SCAN_RERANK, RERANK
SCORE_TOKENS_PER_CANDIDATE = 60
# Share of the time left that a plan may fill.
TIME_SAFETY = 0.8
# retrieve_then_reason's chunk size (its default) and the k values tried, largest first.
RETRIEVE_CHUNK = RETRIEVE_CHUNK_TOKENS
RETRIEVE_KS = (RETRIEVE_K, 2)
# Work without engine calls, in tokens/s on 2 CPU cores: chunking with token counts and BM25,
# and the sentence encoder (all-MiniLM-L6-v2) that evidence selection and dense retrieval use.
INDEX_TOKENS_PER_SECOND = 100_000.0
EMBED_TOKENS_PER_SECOND = 3_000.0


def _has_retrievers() -> bool:
    try:
        from ctxagent.retrievers import get_retriever  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Candidate:
    """One plan, costed."""

    recipe: str
    options: dict[str, Any]
    prompt_tokens: int
    new_tokens: int
    calls: int
    seconds: float
    reads: str
    blockers: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.new_tokens

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in {"prompt_tokens", "new_tokens"}}
        return {**out, "tokens": self.tokens, "seconds": round(self.seconds, 1)}


@dataclass
class Plan:
    recipe: str
    options: dict[str, Any]
    why: str
    speed: EngineSpeed
    reach: Reach
    candidates: list[Candidate]


class Costing:
    """Estimates of each candidate from document tokens, window, effective context and speed.

    The recipes select evidence by scores (recipes/evidence.py): the sentence encoder
    reads the sentences considered, the engine scores a few candidates in one prefill-only
    call per round (the question, then up to `max_hops` follow-ups), and one generation
    writes the answer. Only `direct` puts a whole document in front of the model.
    """

    def __init__(self, ctx: RunContext, tokens: int, speed: EngineSpeed, reach: Reach) -> None:
        self.ctx, self.tokens, self.speed, self.reach = ctx, tokens, speed, reach
        self.window = ctx.engine.context_window - ctx.budget.max_new_tokens
        self.answer_new = min(ctx.budget.max_new_tokens, ANSWER_EXPECTED)
        self.rounds = 1 + ctx.budget.max_hops

    def _prefill(self, tokens: int) -> float:
        return tokens / self.speed.prefill_tokens_per_second

    def _answer(self) -> tuple[int, float]:
        return ANSWER_FRAME, self._prefill(ANSWER_FRAME) + self.answer_new / self.speed.decode_tokens_per_second

    def _selection(self, rerank: int, encoded_tokens: float) -> tuple[int, float]:
        scored = self.rounds * (rerank + 1) * SCORE_TOKENS_PER_CANDIDATE
        return scored, self._prefill(scored) + encoded_tokens / EMBED_TOKENS_PER_SECOND

    def chunk_tokens(self) -> int:
        """Chunk size for reading everything: the effective context, less the prompt around it."""
        return max(128, min(self.window, self.reach.tokens) - PROMPT_FRAME)

    def map_reduce(self) -> Candidate:
        size = self.chunk_tokens()
        n = max(1, math.ceil(self.tokens / size))
        scored, select_s = self._selection(MAP_REDUCE_RERANK, self.tokens)
        answer_tokens, answer_s = self._answer()
        seconds = self.tokens / INDEX_TOKENS_PER_SECOND + select_s + answer_s
        c = Candidate("map_reduce", {"chunk_tokens": size}, scored + answer_tokens, self.answer_new, 2 + self.ctx.budget.max_hops, seconds, f"every sentence of ~{n} chunks")
        if self.tokens > MAP_REDUCE_WINDOWS * self.window:
            c.blockers.append(f"longer than {MAP_REDUCE_WINDOWS} windows")
        return c

    def retrieve(self, k: int) -> Candidate:
        from ctxagent.recipes.retrieval import DENSE_ALL_MAX_CHUNKS, SHORTLIST

        chunks = max(1, math.ceil(self.tokens / RETRIEVE_CHUNK))
        embedded = chunks if chunks <= DENSE_ALL_MAX_CHUNKS else SHORTLIST
        index_s = self.tokens / INDEX_TOKENS_PER_SECOND + embedded * RETRIEVE_CHUNK / EMBED_TOKENS_PER_SECOND
        scored, select_s = self._selection(RETRIEVE_RERANK, self.rounds * k * RETRIEVE_CHUNK)
        answer_tokens, answer_s = self._answer()
        return Candidate("retrieve_then_reason", {"k": k}, scored + answer_tokens, self.answer_new, 2 + self.ctx.budget.max_hops, index_s + select_s + answer_s, f"the {k} best of ~{chunks} chunks")

    def direct(self) -> Candidate:
        prompt = min(self.tokens, self.window) + PROMPT_FRAME
        reads = "everything" if self.tokens <= self.window else f"the first {self.window:,} tokens only"
        seconds = self._prefill(prompt) + self.answer_new / self.speed.decode_tokens_per_second
        return Candidate("direct", {}, prompt, self.answer_new, 1, seconds, reads)

    def check(self, c: Candidate) -> Candidate:
        b, ctx = self.ctx.budget, self.ctx
        left = ctx.tokens_left()
        if left is not None and c.tokens > left:
            c.blockers.append(f"needs ~{c.tokens:,} tokens > {left:,} left of max_tokens")
        calls = ctx.calls_left()
        if calls is not None and c.calls > calls:
            c.blockers.append(f"needs up to {c.calls} calls > {calls} left of max_calls")
        if b.max_seconds is not None:
            room = TIME_SAFETY * (b.max_seconds - ctx.elapsed())
            if c.seconds > room:
                c.blockers.append(f"needs ~{c.seconds:.0f}s > {room:.0f}s ({TIME_SAFETY:.0%} of what is left of max_seconds {b.max_seconds:g})")
        return c


@register("auto")
class AutoRecipe:
    name = "auto"

    def plan(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Plan:
        tokens = sum(estimate_tokens(d.text, ctx.count_tokens) for d in documents)
        reach = effective_context(ctx.engine)
        window = ctx.engine.context_window - ctx.budget.max_new_tokens
        direct_limit = int(DIRECT_FILL * min(window, reach.tokens))
        size = f"{tokens:,} document tokens, {tokens / window:.1f}x the {window:,}-token window, {reach.describe()}"
        if tokens <= direct_limit:
            speed = EngineSpeed(prefill_tokens_per_second=1, decode_tokens_per_second=1, source="not needed")
            return Plan("direct", {}, f"{size}: fits in {DIRECT_FILL:.0%} of what the model reads well", speed, reach, [])
        from ctxagent.recipes.memory_tree import MemoryTreeRecipe

        # Probing costs seconds once; worth it only when there is a time limit to plan against. Like
        # loading the engine, it is a one-off cost, so it does not count against max_seconds.
        began = time.perf_counter()
        speed = engine_speed(ctx.engine, probe=ctx.budget.max_seconds is not None)
        if speed.source == "probe":
            probe_seconds = time.perf_counter() - began
            ctx.started += probe_seconds
            ctx.trace.add("speed_probe", seconds=round(probe_seconds, 3), why="measured once per model and machine, then cached; not counted against max_seconds")
        if tokens <= MAP_REDUCE_WINDOWS * window and MemoryTreeRecipe().cached(ctx, documents, question):
            return Plan("memory_tree", {}, f"{size}; a memory tree of these documents is cached, so navigating it costs a few short calls", speed, reach, [])
        cost = Costing(ctx, tokens, speed, reach)
        candidates = [cost.check(cost.map_reduce())]
        if _has_retrievers():
            candidates += [cost.check(cost.retrieve(k)) for k in RETRIEVE_KS]
        candidates.append(cost.check(cost.direct()))
        at = f"at {speed.describe()}"
        chosen = next((c for c in candidates if not c.blockers), None)
        if chosen is None:
            chosen = min(candidates, key=lambda c: c.seconds)
            why = (
                f"{size}; no plan fits the budget {at} (even {chosen.recipe}: {'; '.join(chosen.blockers)}), "
                f"so the cheapest runs: {chosen.recipe} reading {chosen.reads}"
            )
        else:
            ruled_out = [f"{c.recipe}{'(k=%d)' % c.options['k'] if 'k' in c.options else ''} ruled out ({'; '.join(c.blockers)})" for c in candidates[: candidates.index(chosen)]]
            why = f"{size}; {'; '.join(ruled_out) + '; ' if ruled_out else ''}{chosen.recipe} reads {chosen.reads} in ~{chosen.seconds:.0f}s {at}, within the budget"
        return Plan(chosen.recipe, chosen.options, why, speed, reach, candidates)

    def choose(self, ctx: RunContext, documents: Sequence[Document], question: str) -> tuple[str, dict[str, Any], str]:
        """(recipe name, its options, why); the graph's plan node calls this too."""
        plan = self.plan(ctx, documents, question)
        return plan.recipe, plan.options, plan.why

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        plan = self.plan(ctx, documents, question)
        ctx.trace.add(
            "plan",
            recipe=plan.recipe,
            why=plan.why,
            options=plan.options,
            speed=plan.speed.model_dump(include={"prefill_tokens_per_second", "decode_tokens_per_second", "source"}),
            effective_context={"tokens": plan.reach.tokens, "source": plan.reach.source},
            candidates=[c.summary() for c in plan.candidates],
        )
        answer = run_recipe(get_recipe(plan.recipe, **plan.options), ctx, documents, question)  # out of budget: partial, still named
        return answer.model_copy(update={"recipe": f"auto:{plan.recipe}"})
