"""`doc_qa_graph()`: the SDK's `auto` recipe as a compiled LangGraph graph.

    load -> plan -+-> fit -> answer ------------+-> verify -> END
                  +-> retrieve -> extract -> reason -+
                  +-> read -------------------------+

`plan` decides exactly as `auto` does; documents that fit the window go through
`fit` and `answer` (the direct recipe's two steps); a retrieve_then_reason plan
goes through that recipe's three steps; any other long-document recipe
(map_reduce, memory_tree, ...) runs whole in `read`. So the graph's answers are the SDK's
answers, and with a checkpointer a run can stop before any node and resume later,
in this process or another.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Sequence

from ctxagent.engines import Engine
from ctxagent.graph import nodes
from ctxagent.graph.state import DocQAState

NODES = ("load", "plan", "fit", "answer", "retrieve", "extract", "reason", "read", "verify")


def doc_qa_graph(
    engine: Engine | str | None = None,
    *,
    recipe: str = "auto",
    checkpointer: Any = None,
    interrupt_before: Sequence[str] | None = None,
    interrupt_after: Sequence[str] | None = None,
    **engine_options: Any,
) -> Any:
    """A compiled graph over `DocQAState`: invoke it with `{"sources": [path], "question": q}`
    (or `"documents": [Document, ...]`); the result's `answer` is an Answer.

    engine: an Engine, or a registered name loaded at the first node that needs it (default hf).
    recipe: "auto" (default) plans like the SDK; a recipe name fixes the plan.
    checkpointer: any LangGraph checkpointer, e.g. `InMemorySaver()` or `sqlite_checkpointer(path)`;
    runs then need `config={"configurable": {"thread_id": ...}}`.
    interrupt_before / interrupt_after: node names from NODES at which the run pauses;
    `graph.invoke(None, config)` resumes it.
    """
    from langgraph.graph import END, START, StateGraph

    get = nodes.engine_provider(engine, **engine_options)
    graph = StateGraph(DocQAState)
    graph.add_node("load", nodes.load_node())
    graph.add_node("plan", nodes.plan_node(get, recipe=recipe))
    graph.add_node("fit", nodes.fit_node(get))
    graph.add_node("answer", nodes.answer_node(get))
    graph.add_node("retrieve", nodes.retrieve_node(get))
    graph.add_node("extract", nodes.extract_node(get))
    graph.add_node("reason", nodes.reason_node(get))
    graph.add_node("read", nodes.read_node(get))
    graph.add_node("verify", nodes.verify_node())
    graph.add_edge(START, "load")
    graph.add_edge("load", "plan")
    graph.add_conditional_edges("plan", nodes.route_by_plan(), {"fit": "fit", "retrieve": "retrieve", "read": "read"})
    graph.add_edge("fit", "answer")
    graph.add_edge("answer", "verify")
    graph.add_edge("retrieve", "extract")
    graph.add_conditional_edges("extract", nodes.route_after_extract(), {"reason": "reason", "verify": "verify"})
    graph.add_edge("reason", "verify")
    graph.add_edge("read", "verify")
    graph.add_edge("verify", END)
    for name in [*(interrupt_before or []), *(interrupt_after or [])]:
        if name not in NODES:
            from ctxagent.errors import InputError

            raise InputError(f"no node {name!r} to interrupt at; the graph's nodes are {', '.join(NODES)}")
    return graph.compile(checkpointer=checkpointer, interrupt_before=interrupt_before, interrupt_after=interrupt_after, name="ctxagent_doc_qa")


# ctxagent's own types that checkpoints hold; LangGraph restores only types it is told are safe.
CHECKPOINT_TYPES = [
    ("ctxagent.types", name) for name in ("Document", "Chunk", "Budget", "Citation", "Usage", "TraceStep", "Trace", "Answer")
] + [("ctxagent.graph.state", "DocQAState"), ("ctxagent.graph.state", "FactRecord")]


def checkpoint_serde() -> Any:
    """LangGraph's serializer with ctxagent's types allowed (no warnings, and safe under LANGGRAPH_STRICT_MSGPACK)."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=CHECKPOINT_TYPES)


def memory_checkpointer() -> Any:
    """An in-memory checkpointer: interrupt and resume within one process."""
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver(serde=checkpoint_serde())


def sqlite_checkpointer(path: str | Path) -> Any:
    """A SQLite checkpointer on `path`: an interrupted run resumes from another process."""
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:
        from ctxagent.errors import EngineNotInstalled

        raise EngineNotInstalled("SQLite checkpoints need langgraph-checkpoint-sqlite: `pip install ctxagent[graph]`") from None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteSaver(sqlite3.connect(str(path), check_same_thread=False), serde=checkpoint_serde())
