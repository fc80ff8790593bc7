"""LangGraph integration: ctxagent's steps as graph nodes, and a prebuilt document-QA graph.

    from ctxagent.graph import doc_qa_graph
    graph = doc_qa_graph()
    state = graph.invoke({"sources": ["report.md"], "question": "What was the Q3 revenue?"})
    state["answer"].text

Needs `pip install ctxagent[graph]` (langgraph). The node factories in
`ctxagent.graph.nodes` are plain callables and import no LangGraph.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DocQAState": "ctxagent.graph.state",
    "Keys": "ctxagent.graph.state",
    "doc_qa_graph": "ctxagent.graph.prebuilt",
    "sqlite_checkpointer": "ctxagent.graph.prebuilt",
    "memory_checkpointer": "ctxagent.graph.prebuilt",
    "checkpoint_serde": "ctxagent.graph.prebuilt",
    "load_node": "ctxagent.graph.nodes",
    "plan_node": "ctxagent.graph.nodes",
    "fit_node": "ctxagent.graph.nodes",
    "retrieve_node": "ctxagent.graph.nodes",
    "answer_node": "ctxagent.graph.nodes",
    "compress_node": "ctxagent.graph.nodes",
    "extract_node": "ctxagent.graph.nodes",
    "reason_node": "ctxagent.graph.nodes",
    "route_after_extract": "ctxagent.graph.nodes",
    "read_node": "ctxagent.graph.nodes",
    "verify_node": "ctxagent.graph.nodes",
    "route_by_plan": "ctxagent.graph.nodes",
    "engine_provider": "ctxagent.graph.nodes",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ctxagent.graph' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
