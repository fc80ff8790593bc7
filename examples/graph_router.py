"""ctxagent's nodes inside a larger LangGraph agent.

A router looks at each turn: a question with attached documents goes through
ctxagent's document-QA nodes (load, plan, fit or read, answer, verify); an
arithmetic question goes to a calculator node; anything else gets a canned reply.
The agent's state names the user's text `message` and the files `attachments`;
the ctxagent nodes are told so with `keys=`.

    python examples/graph_router.py            # uses the embedded model
"""

from __future__ import annotations

import operator
import re
import sys
from pathlib import Path

from langgraph.graph import END, START, StateGraph
from pydantic import Field

from ctxagent.graph import DocQAState, nodes

# ctxagent's fields under the agent's own names; the rest keep ctxagent's names.
KEYS = {"question": "message", "sources": "attachments"}
ARITHMETIC = re.compile(r"(-?\d+(?:\.\d+)?)\s*(\+|-|\*|/|plus|minus|times|divided by)\s*(-?\d+(?:\.\d+)?)")
OPERATORS = {"+": operator.add, "plus": operator.add, "-": operator.sub, "minus": operator.sub,
             "*": operator.mul, "times": operator.mul, "/": operator.truediv, "divided by": operator.truediv}  # fmt: skip


class AgentState(DocQAState):
    """The agent's state: its own fields, plus ctxagent's working fields inherited from DocQAState."""

    message: str = ""
    attachments: list[str] = Field(default_factory=list)
    route: str = ""
    reply: str = ""


def route(state: AgentState) -> dict:
    if state.attachments or state.documents:
        return {"route": "documents"}
    return {"route": "calculator" if ARITHMETIC.search(state.message) else "chat"}


def calculator(state: AgentState) -> dict:
    a, op, b = ARITHMETIC.search(state.message).groups()  # type: ignore[union-attr]
    value = OPERATORS[op](float(a), float(b))
    return {"reply": f"{value:g}"}


def chat(state: AgentState) -> dict:
    return {"reply": "Attach a document and ask about it, or ask me some arithmetic."}


def document_reply(state: AgentState) -> dict:
    answer = state.answer
    assert answer is not None
    sources = "; ".join(f'{c.doc_id}: "{c.quote}"' for c in answer.citations)
    return {"reply": answer.text + (f"\n(sources: {sources})" if sources else "")}


def build_agent(engine=None):
    """The compiled agent graph; `engine` is any ctxagent engine or name (default: embedded hf)."""
    get = nodes.engine_provider(engine)
    g = StateGraph(AgentState)
    g.add_node("route", route)
    g.add_node("calculator", calculator)
    g.add_node("chat", chat)
    # ctxagent's document-QA steps, reading and writing the agent's state.
    g.add_node("load", nodes.load_node(keys=KEYS))
    g.add_node("plan", nodes.plan_node(get, keys=KEYS))
    g.add_node("fit", nodes.fit_node(get, keys=KEYS))
    g.add_node("answer", nodes.answer_node(get, keys=KEYS))
    g.add_node("read", nodes.read_node(get, keys=KEYS))
    g.add_node("verify", nodes.verify_node(keys=KEYS))
    g.add_node("document_reply", document_reply)

    g.add_edge(START, "route")
    g.add_conditional_edges("route", lambda s: s.route, {"documents": "load", "calculator": "calculator", "chat": "chat"})
    g.add_edge("load", "plan")
    # Short documents: fit + answer; long ones: the recipe auto chose, run whole in `read`.
    g.add_conditional_edges("plan", nodes.route_by_plan(keys=KEYS, retrieve=None), {"fit": "fit", "read": "read"})
    g.add_edge("fit", "answer")
    g.add_edge("answer", "verify")
    g.add_edge("read", "verify")
    g.add_edge("verify", "document_reply")
    for last in ("document_reply", "calculator", "chat"):
        g.add_edge(last, END)
    return g.compile()


def main() -> None:
    report = Path(__file__).resolve().parent / "data" / "report.md"
    agent = build_agent()
    for turn in (
        {"message": "What was the third-quarter revenue?", "attachments": [str(report)]},
        {"message": "What is 26.4 plus 24.9?"},
        {"message": "Hello!"},
    ):
        result = agent.invoke(turn)
        print(f"> {turn['message']}\n[{result['route']}] {result['reply']}\n", file=sys.stdout)


if __name__ == "__main__":
    main()
