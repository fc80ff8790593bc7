"""Node factories: the steps ctxagent's recipes take, as plain callables for a LangGraph `StateGraph`.

Each factory returns `node(state) -> dict` that reads its inputs from the state and
returns only the keys it changes, so it drops into any graph whose state holds
those fields (rename them with `keys=`). Nothing here imports LangGraph: a node is
an ordinary function, callable and testable on its own.

    from ctxagent.graph import nodes
    g.add_node("load", nodes.load_node())
    g.add_node("plan", nodes.plan_node(engine))
    g.add_node("fit", nodes.fit_node(engine))        # read whole documents (the direct recipe's step)
    g.add_node("answer", nodes.answer_node(engine))
    g.add_node("retrieve", nodes.retrieve_node(engine))  # retrieve_then_reason, step by step:
    g.add_node("extract", nodes.extract_node(engine))    #   verified quotes from the retrieved chunks
    g.add_node("reason", nodes.reason_node(engine))      #   the answer from those quotes
    g.add_node("read", nodes.read_node(engine))      # or: any long-document recipe, run as one step
    g.add_node("compress", nodes.compress_node(engine))  # shrink documents or chunks to the window, then "answer"
    g.add_node("verify", nodes.verify_node())

Each node is a thin adapter from state to one of the recipes' step functions
(ctxagent.recipes.steps), the same functions the SDK's recipes and corpus questions
run, so the graph's answers are the SDK's. Budgets hold across nodes: each node starts
a RunContext from the state's usage and trace and writes them back, so the Budget
counts the whole run.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from ctxagent.defaults import COMPRESS_CHUNK_TOKENS, DEFAULT_ENGINE
from ctxagent.engines import Engine, get_engine
from ctxagent.errors import BudgetExhausted
from ctxagent.graph.state import Keys, read, update
from ctxagent.recipes import steps
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, Trace, TraceStep

log = logging.getLogger(__name__)

Node = Callable[[Any], dict[str, Any]]
# The retrieve node's chunks and index, kept for the extract node that follows it (bounded).
_RETRIEVALS = steps.RetrievalCache(size=2)
EngineLike = Engine | str | Callable[[], Engine] | None
KeysLike = Keys | Mapping[str, str] | None


def engine_provider(engine: EngineLike, **options: Any) -> Callable[[], Engine]:
    """Resolve an engine lazily: building a graph is free; the model loads at the first node that needs it.
    One provider can be shared by many nodes so they share one engine."""
    if engine is not None and not isinstance(engine, str) and not callable(getattr(engine, "generate", None)):
        return engine  # type: ignore[return-value]  # already a provider
    loaded: list[Engine] = [] if engine is None or isinstance(engine, str) else [engine]  # type: ignore[list-item]

    def get() -> Engine:
        if not loaded:
            loaded.append(get_engine(engine or DEFAULT_ENGINE, **options))  # type: ignore[arg-type]
        return loaded[0]

    return get


def _context(engine: Engine, state: Any, keys: Keys) -> RunContext:
    trace: Trace = read(state, keys, "trace")
    usage = read(state, keys, "usage")
    ctx = RunContext(engine=engine, budget=read(state, keys, "budget"), trace=Trace(steps=list(trace.steps)), usage=usage)
    # max_seconds counts the engine time of earlier nodes too (wall time between nodes, e.g. while
    # a checkpointed run was paused, does not count).
    ctx.started -= usage.seconds
    return ctx


def _emit(node: str, taken: list[TraceStep]) -> None:
    """Stream each trace step a node took as a LangGraph custom event (`stream_mode="custom"`)."""
    try:
        from langgraph.config import get_stream_writer

        writer = get_stream_writer()
    except (ImportError, RuntimeError):  # not running inside a LangGraph graph
        return
    for step in taken:
        writer({"node": node, "step": step.name, "seconds": step.seconds, **step.detail})


def _finish(node: str, ctx: RunContext, keys: Keys, before: int, **values: Any) -> dict[str, Any]:
    _emit(node, ctx.trace.steps[before:])
    return update(keys, usage=ctx.usage, trace=ctx.trace, **values)


def _question(state: Any, keys: Keys) -> str:
    from ctxagent.agent import check_question

    return check_question(read(state, keys, "question"))


def load_node(*, keys: KeysLike = None, encoding: str = "utf-8") -> Node:
    """Read the `sources` files into `documents` (documents already in the state are kept)."""
    k = Keys.of(keys)

    def load(state: Any) -> dict[str, Any]:
        from ctxagent.agent import load_sources
        from ctxagent.loaders import load_document

        _question(state, k)  # fail before any work on an empty question
        given = list(read(state, k, "documents"))
        paths = [s for s in read(state, k, "sources") if s not in {d.metadata.get("source") for d in given}]
        documents = load_sources(given + [load_document(p, encoding=encoding) for p in paths])
        trace: Trace = read(state, k, "trace")
        step = TraceStep(name="load", detail={"documents": [d.id for d in documents], "characters": sum(len(d.text) for d in documents)})
        _emit("load", [step])
        return update(k, documents=documents, trace=Trace(steps=[*trace.steps, step]))

    return load


def plan_node(engine: EngineLike = None, *, recipe: str = "auto", keys: KeysLike = None) -> Node:
    """Choose the recipe as the SDK's `auto` does (from length, window and budget), or fix it with `recipe=`."""
    k, get = Keys.of(keys), engine_provider(engine)

    def plan(state: Any) -> dict[str, Any]:
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        if recipe == "auto":
            choice, options, why = steps.plan(ctx, read(state, k, "documents"), _question(state, k))
        else:
            choice, options, why = recipe, {}, "fixed by the graph"
        return _finish("plan", ctx, k, before, plan=choice, plan_options=options, plan_reason=why)

    return plan


def route_by_plan(*, keys: KeysLike = None, short: str = "fit", retrieve: str | None = "retrieve", long: str = "read") -> Callable[[Any], str]:
    """For `add_conditional_edges` after the plan node: `direct` -> `short`,
    `retrieve_then_reason` -> `retrieve` (None: to `long` too), any other recipe -> `long`."""
    k = Keys.of(keys)

    def route(state: Any) -> str:
        plan = read(state, k, "plan")
        if plan in ("", "direct"):
            return short
        if plan == "retrieve_then_reason" and retrieve:
            return retrieve
        return long

    return route


def route_after_extract(*, keys: KeysLike = None, reason: str = "reason", done: str = "verify") -> Callable[[Any], str]:
    """After the extract node: on to `reason`, or straight to `done` when the budget already ended the run."""
    k = Keys.of(keys)

    def route(state: Any) -> str:
        return done if read(state, k, "answer") is not None else reason

    return route


def fit_node(engine: EngineLike = None, *, keys: KeysLike = None) -> Node:
    """Put as much of the documents as fits the window into `context` (the direct recipe's reading step)."""
    k, get = Keys.of(keys), engine_provider(engine)

    def fit(state: Any) -> dict[str, Any]:
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        result = steps.fit(ctx, read(state, k, "documents"), _question(state, k))
        notes = [*read(state, k, "notes"), *result.notes]
        return _finish("fit", ctx, k, before, context=result.context, regions=result.regions, notes=notes)

    return fit


def _rtr(state: Any, keys: Keys, options: dict[str, Any]) -> Any:
    """The retrieve_then_reason recipe with the plan's options, overridden by the node's."""
    from ctxagent.recipes.retrieve_then_reason import RetrieveThenReasonRecipe

    merged = {**(read(state, keys, "plan_options") if read(state, keys, "plan") == "retrieve_then_reason" else {}), **options}
    return RetrieveThenReasonRecipe(**merged)


def retrieve_node(engine: EngineLike = None, *, keys: KeysLike = None, **options: Any) -> Node:
    """Cut the documents into chunks, index them with a retriever, keep the best for the question
    (the retrieve_then_reason recipe's first step; options: retriever="hybrid", k=4, chunk_tokens=256).

    Writes `chunks` (best first), and a `context` of those chunks in document order with their
    `regions`, so an answer node can follow directly, or an extract node for verified quotes.
    """
    k, get = Keys.of(keys), engine_provider(engine)

    def retrieve(state: Any) -> dict[str, Any]:
        question = _question(state, k)
        recipe = _rtr(state, k, options)
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        found = steps.retrieval(ctx, read(state, k, "documents"), question, recipe.retriever, recipe.chunk_tokens, cache=_RETRIEVALS)
        hits = steps.retrieve(ctx, found, question, recipe.k)
        kept = [found.chunks[i] for i, _ in hits]
        ordered = sorted(kept, key=lambda c: (c.doc_id, c.start))
        many = len({c.doc_id for c in ordered}) > 1
        context = "\n\n".join(f"[{c.doc_id}]\n{c.text}" if many else c.text for c in ordered)
        regions = [(c.doc_id, c.start, c.end) for c in ordered]
        return _finish("retrieve", ctx, k, before, chunks=kept, context=context, regions=regions)

    return retrieve


def extract_node(engine: EngineLike = None, *, keys: KeysLike = None, recipe: str | None = None, **options: Any) -> Node:
    """Select evidence in the retrieved `chunks`: their sentences are scored (BM25, sentence encoder,
    the engine's log-probs; see recipes/evidence.py) and the best become `facts`, and open chains are
    followed over the whole document up to `Budget.max_hops` (the retrieve_then_reason recipe's second
    step; options as for retrieve_node, give both the same). If the budget runs out here, the run ends
    with a partial `answer` from what was found."""
    k, get = Keys.of(keys), engine_provider(engine)

    def extract(state: Any) -> dict[str, Any]:
        from ctxagent.graph.state import FactRecord
        from ctxagent.recipes.reading import Facts

        question = _question(state, k)
        rtr = _rtr(state, k, options)
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        documents = read(state, k, "documents")
        kept = read(state, k, "chunks")
        # The retrieve step's chunks and index (kept in this process; rebuilt only when the run
        # resumed elsewhere), so hops can search the whole document.
        found = steps.retrieval(ctx, documents, question, rtr.retriever, rtr.chunk_tokens, cache=_RETRIEVALS)
        facts, pool = Facts(), rtr.selector.pool(found.chunks)
        try:
            positions = [found.position(c) for c in kept]
            steps.select_evidence(ctx, rtr.selector, pool, documents, question, facts, step="select", positions=positions, fetch=found.fetch(rtr.k))
        except BudgetExhausted as exc:
            answer = steps.partial(ctx, recipe or _label(state, k), question, facts, exc, len(kept), len(kept))
            return _finish("extract", ctx, k, before, answer=answer)
        records = [FactRecord(citation=f.citation, relevance=f.relevance, chunk=f.chunk, about=f.about) for f in facts.items]
        return _finish("extract", ctx, k, before, facts=records)

    return extract


def reason_node(engine: EngineLike = None, *, keys: KeysLike = None, recipe: str | None = None) -> Node:
    """Answer from the verified `facts` alone and cite them; if the model's answer is not supported by
    them, the best quote is the answer (the long-document recipes' shared last step)."""
    k, get = Keys.of(keys), engine_provider(engine)

    def reason(state: Any) -> dict[str, Any]:
        from ctxagent.recipes.reading import Fact, Facts

        question = _question(state, k)
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        facts = Facts()
        facts.add([Fact(citation=f.citation, relevance=f.relevance, chunk=f.chunk, about=f.about) for f in read(state, k, "facts")])
        answer = steps.answer(ctx, recipe or _label(state, k), read(state, k, "documents"), question, facts, notes=read(state, k, "notes"))
        return _finish("reason", ctx, k, before, answer=answer)

    return reason


def compress_node(
    engine: EngineLike = None, *, compressor: str = "perplexity", ratio: float | None = None, chunk_tokens: int = COMPRESS_CHUNK_TOKENS, keys: KeysLike = None, **options: Any
) -> Node:
    """Shrink the documents (or the retrieved `chunks`, when there are any) to what matters for the
    question and fits the window, with a registered compressor (perplexity, self_information,
    embedding). Writes the compressed text as `context` and the source spans it kept as `regions`,
    so the answer node cites the original documents. Model scoring counts against the Budget."""
    k, get = Keys.of(keys), engine_provider(engine)

    def compress(state: Any) -> dict[str, Any]:
        question = _question(state, k)
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        chunks = read(state, k, "chunks")
        if not chunks:
            chunks = steps.compress_chunks(ctx, read(state, k, "documents"), chunk_tokens)
        else:
            chunks = sorted(chunks, key=lambda c: (c.doc_id, c.start))
        compressed = steps.compress(ctx, chunks, question, compressor, ratio=ratio, options=options)
        regions = [(s.doc_id, s.start, s.end) for s in compressed.to_source(0, len(compressed.text), merge_gap=200)]
        note = f"read a {compressed.factor:.1f}x compressed form ({compressed.compressed_tokens} of {compressed.original_tokens} tokens, method '{compressed.method}')"
        notes = [*read(state, k, "notes"), note]
        return _finish("compress", ctx, k, before, context=compressed.text, regions=regions, notes=notes)

    return compress


def answer_node(engine: EngineLike = None, *, keys: KeysLike = None, recipe: str | None = None) -> Node:
    """Answer the question over `context`, citing source sentences from `regions` (the direct recipe's answer step).

    recipe: the name recorded on the Answer; by default 'auto:<plan>' after an auto plan,
    so the graph's Answer reads like the SDK's.
    """
    k, get = Keys.of(keys), engine_provider(engine)

    def answer(state: Any) -> dict[str, Any]:
        question = _question(state, k)
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        fit = steps.Fit(context=read(state, k, "context"), regions=[tuple(r) for r in read(state, k, "regions")], notes=read(state, k, "notes"))
        result = steps.answer_context(ctx, recipe or _label(state, k), fit, read(state, k, "documents"), question)
        return _finish("answer", ctx, k, before, answer=result)

    return answer


def read_node(engine: EngineLike = None, *, recipe: str | None = None, keys: KeysLike = None, **recipe_options: Any) -> Node:
    """Run a whole reading recipe (map_reduce, recurrent, memory_tree, ...) as one step and keep its Answer.

    recipe: None runs the one the plan node chose, exactly as the SDK's `auto` runs it.
    """
    k, get = Keys.of(keys), engine_provider(engine)

    def read_step(state: Any) -> dict[str, Any]:
        from ctxagent.recipes import get_recipe
        from ctxagent.recipes.base import run_recipe

        name = recipe or read(state, k, "plan") or "direct"
        options = {**(read(state, k, "plan_options") if recipe is None else {}), **recipe_options}
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        result = run_recipe(get_recipe(name, **options), ctx, read(state, k, "documents"), _question(state, k))
        if recipe is None:  # named like the SDK's auto names it
            result = result.model_copy(update={"recipe": _label(state, k)})
        return _finish("read", ctx, k, before, answer=result)

    return read_step


def verify_node(*, keys: KeysLike = None) -> Node:
    """Check every citation against its document; drop any that is not verbatim at its offsets, and say so;
    then the last step of every entry point (steps.finish): PDF page numbers on the citations."""
    k = Keys.of(keys)

    def verify(state: Any) -> dict[str, Any]:
        from ctxagent.citations import verify_citations

        answer: Answer | None = read(state, k, "answer")
        if answer is None:
            from ctxagent.errors import InputError

            raise InputError("the verify node found no answer in the state; put it after an answer or read node")
        bad = verify_citations(answer.citations, read(state, k, "documents"))
        trace: Trace = read(state, k, "trace")
        step = TraceStep(name="verify", detail={"citations": len(answer.citations), "rejected": len(bad)})
        _emit("verify", [step])
        if bad:
            kept = [c for c in answer.citations if c not in bad]
            answer = answer.model_copy(update={"citations": kept, "notes": [*answer.notes, f"{len(bad)} citation(s) did not match the source and were dropped"]})
        answer = steps.finish(answer.model_copy(update={"trace": Trace(steps=[*answer.trace.steps, step])}), read(state, k, "documents"))
        return update(k, answer=answer, unverified=bad, trace=Trace(steps=[*trace.steps, step]))

    return verify


def _label(state: Any, keys: Keys) -> str:
    plan = read(state, keys, "plan") or "direct"
    planned_by_auto = any(s.name == "plan" for s in read(state, keys, "trace").steps)
    return f"auto:{plan}" if planned_by_auto else plan
