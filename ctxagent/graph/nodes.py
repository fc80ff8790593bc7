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
    g.add_node("read", nodes.read_node(engine))      # or: a long-document recipe, run as one step
    g.add_node("verify", nodes.verify_node())

Budgets hold across nodes: each node starts a RunContext from the state's usage
and trace and writes them back, so the Budget counts the whole run.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from ctxagent.engines import Engine, get_engine
from ctxagent.graph.state import Keys, read, update
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, Trace, TraceStep

log = logging.getLogger(__name__)

Node = Callable[[Any], dict[str, Any]]
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
            loaded.append(get_engine(engine or "hf", **options))  # type: ignore[arg-type]
        return loaded[0]

    return get


def _context(engine: Engine, state: Any, keys: Keys) -> RunContext:
    trace: Trace = read(state, keys, "trace")
    return RunContext(engine=engine, budget=read(state, keys, "budget"), trace=Trace(steps=list(trace.steps)), usage=read(state, keys, "usage"))


def _emit(node: str, steps: list[TraceStep]) -> None:
    """Stream each trace step a node took as a LangGraph custom event (`stream_mode="custom"`)."""
    try:
        from langgraph.config import get_stream_writer

        writer = get_stream_writer()
    except (ImportError, RuntimeError):  # not running inside a LangGraph graph
        return
    for step in steps:
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
        from ctxagent.recipes.auto import AutoRecipe

        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        if recipe == "auto":
            choice, why = AutoRecipe().choose(ctx, read(state, k, "documents"), _question(state, k))
            ctx.trace.add("plan", recipe=choice, why=why)
        else:
            choice, why = recipe, "fixed by the graph"
        return _finish("plan", ctx, k, before, plan=choice, plan_reason=why)

    return plan


def route_by_plan(*, keys: KeysLike = None, short: str = "fit", long: str = "read") -> Callable[[Any], str]:
    """For `add_conditional_edges`: a plan to read whole documents -> `short`, any other recipe -> `long`."""
    k = Keys.of(keys)

    def route(state: Any) -> str:
        return short if read(state, k, "plan") in ("", "direct") else long

    return route


def fit_node(engine: EngineLike = None, *, keys: KeysLike = None) -> Node:
    """Put as much of the documents as fits the window into `context` (the direct recipe's reading step)."""
    k, get = Keys.of(keys), engine_provider(engine)

    def fit(state: Any) -> dict[str, Any]:
        from ctxagent.recipes.direct import fit_documents

        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        result = fit_documents(ctx, read(state, k, "documents"), _question(state, k))
        notes = [*read(state, k, "notes"), *result.notes]
        return _finish("fit", ctx, k, before, context=result.context, regions=result.regions, notes=notes)

    return fit


def retrieve_node(
    engine: EngineLike = None, *, retriever: str = "bm25", k: int = 5, chunk_tokens: int = 256, keys: KeysLike = None, **retriever_options: Any
) -> Node:
    """Chunk the documents, index them with a registered retriever, keep the `k` best chunks for the question.

    Writes `chunks` (best first) and a `context` of those chunks in document order,
    with `regions` pointing at their spans, ready for the answer node.
    """
    keys_, get = Keys.of(keys), engine_provider(engine)

    def retrieve(state: Any) -> dict[str, Any]:
        from ctxagent.chunking import chunk_document
        from ctxagent.retrievers import get_retriever

        question = _question(state, keys_)
        ctx = _context(get(), state, keys_)
        before = len(ctx.trace.steps)
        documents = read(state, keys_, "documents")
        chunks = [c for d in documents for c in chunk_document(d, ctx.count_tokens, chunk_tokens)]
        index = get_retriever(retriever, **retriever_options)
        index.index(chunks)
        hits = [getattr(h, "chunk", h) for h in index.search(question, k)]
        ctx.trace.add("retrieve", retriever=retriever, chunks=len(chunks), kept=[f"{c.doc_id}#{c.index}" for c in hits])
        ordered = sorted(hits, key=lambda c: (c.doc_id, c.start))
        many = len({c.doc_id for c in ordered}) > 1
        context = "\n\n".join(f"[{c.doc_id}] {c.text}" if many else c.text for c in ordered)
        regions = [(c.doc_id, c.start, c.end) for c in ordered]
        return _finish("retrieve", ctx, keys_, before, chunks=hits, context=context, regions=regions)

    return retrieve


def answer_node(engine: EngineLike = None, *, keys: KeysLike = None, recipe: str | None = None) -> Node:
    """Answer the question over `context`, citing source sentences from `regions` (the direct recipe's answer step).

    recipe: the name recorded on the Answer; by default 'auto:<plan>' after an auto plan,
    so the graph's Answer reads like the SDK's.
    """
    k, get = Keys.of(keys), engine_provider(engine)

    def answer(state: Any) -> dict[str, Any]:
        from ctxagent.recipes.direct import Fit, answer_from

        question = _question(state, k)
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        fit = Fit(context=read(state, k, "context"), regions=[tuple(r) for r in read(state, k, "regions")], notes=read(state, k, "notes"))
        text, citations = answer_from(ctx, fit, read(state, k, "documents"), question)
        result = ctx.answer(text, recipe=recipe or _label(state, k), citations=citations, notes=fit.notes)
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
        ctx = _context(get(), state, k)
        before = len(ctx.trace.steps)
        result = run_recipe(get_recipe(name, **recipe_options), ctx, read(state, k, "documents"), _question(state, k))
        if recipe is None:  # named like the SDK's auto names it
            result = result.model_copy(update={"recipe": _label(state, k)})
        return _finish("read", ctx, k, before, answer=result)

    return read_step


def verify_node(*, keys: KeysLike = None) -> Node:
    """Check every citation against its document; drop any that is not verbatim at its offsets, and say so."""
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
        answer = answer.model_copy(update={"trace": Trace(steps=[*answer.trace.steps, step])})
        return update(k, answer=answer, unverified=bad, trace=Trace(steps=[*trace.steps, step]))

    return verify


def _label(state: Any, keys: Keys) -> str:
    plan = read(state, keys, "plan") or "direct"
    planned_by_auto = any(s.name == "plan" for s in read(state, keys, "trace").steps)
    return f"auto:{plan}" if planned_by_auto else plan
