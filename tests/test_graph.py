"""LangGraph: the prebuilt document-QA graph with the real model, checkpoints, interrupts, custom state keys.

The real-model test answers the bundled example through a checkpointed graph that
is interrupted before its answer node and resumed from SQLite by a second graph
object, as a new process would. Control-flow tests use the scripted engine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

from ctxagent import ContextAgent  # noqa: E402
from ctxagent.errors import InputError  # noqa: E402
from ctxagent.graph import DocQAState, doc_qa_graph, memory_checkpointer, nodes, sqlite_checkpointer  # noqa: E402
from ctxagent.types import Answer, Citation, Document  # noqa: E402
from tests.fakes import ScriptedEngine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "examples" / "data" / "report.md"
QUESTION = "What was the third-quarter revenue?"


def test_checkpointed_graph_interrupted_and_resumed_answers_like_the_sdk(engine, tmp_path):
    config = {"configurable": {"thread_id": "report-q3"}}
    db = tmp_path / "checkpoints.sqlite"
    first = doc_qa_graph(engine, checkpointer=sqlite_checkpointer(db), interrupt_before=["answer"])
    paused = first.invoke({"sources": [str(REPORT)], "question": QUESTION}, config)
    assert paused.get("answer") is None, "the run should stop before the answer node"
    assert first.get_state(config).next == ("answer",)
    assert paused["plan"] == "direct" and "26.4 million euros" in paused["context"]

    # A new graph object over the same SQLite file, as after a restart: resume, streaming events.
    second = doc_qa_graph(engine, checkpointer=sqlite_checkpointer(db))
    events = list(second.stream(None, config, stream_mode=["updates", "custom"]))
    updated = [next(iter(e)) for mode, e in events if mode == "updates"]
    custom = [e for mode, e in events if mode == "custom"]
    assert updated == ["answer", "verify"], "resuming runs only what was left"
    assert {"node": "answer", "step": "answer"}.items() <= custom[0].items() and custom[0]["prompt_tokens"] > 300

    answer: Answer = second.get_state(config).values["answer"]
    assert "26.4" in answer.text
    sdk = ContextAgent(engine=engine).ask(REPORT, QUESTION)
    assert answer.text == sdk.text and answer.citations == sdk.citations and answer.recipe == sdk.recipe == "auto:direct"
    assert [s.name for s in answer.trace.steps] == ["load", "plan", "fit", "answer", "evidence", "answer:grounded", "verify"]
    source = REPORT.read_text()
    assert answer.citations and all(source[c.start : c.end] == c.quote for c in answer.citations)


def scripted(reply: str = "Third-quarter revenue reached 26.4 million euros.") -> ScriptedEngine:
    return ScriptedEngine(lambda prompt: reply, context_window=8192)


def test_in_memory_checkpoint_interrupt_before_plan_then_resume():
    engine = scripted()
    graph = doc_qa_graph(engine, checkpointer=memory_checkpointer(), interrupt_before=["plan"])
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"documents": [Document(id="r", text=REPORT.read_text())], "question": QUESTION}, config)
    assert graph.get_state(config).next == ("plan",) and not engine.calls
    state = graph.invoke(None, config)
    assert state["answer"].text.startswith("Third-quarter") and len(engine.calls) == 1
    assert state["answer"].citations[0].quote.startswith("Third-quarter revenue reached 26.4")


def test_bad_inputs_are_named():
    with pytest.raises(InputError, match="no node 'answr'"):
        doc_qa_graph(scripted(), interrupt_before=["answr"])
    with pytest.raises(InputError, match="question is empty"):
        doc_qa_graph(scripted()).invoke({"sources": [str(REPORT)], "question": "  "})
    with pytest.raises(InputError, match="unknown state keys"):
        nodes.load_node(keys={"quesiton": "q"})


def test_nodes_work_on_a_users_own_state_keys():
    """Plain callables over a dict state whose fields have other names."""
    keys = {"question": "query", "documents": "docs", "answer": "reply"}
    engine = scripted()
    state: dict = {"query": QUESTION, "docs": [Document(id="r", text=REPORT.read_text())]}
    for node in (nodes.load_node(keys=keys), nodes.plan_node(engine, keys=keys), nodes.fit_node(engine, keys=keys),
                 nodes.answer_node(engine, keys=keys), nodes.verify_node(keys=keys)):  # fmt: skip
        state.update(node(state))
    assert isinstance(state["reply"], Answer) and "26.4" in state["reply"].text
    assert "answer" not in state and "question" not in state
    assert state["usage"].engine_calls == 1


def test_verify_node_drops_citations_that_are_not_in_the_source():
    doc = Document(id="d", text="The code is 7319.")
    good = Citation(doc_id="d", start=0, end=17, quote="The code is 7319.")
    bad = Citation(doc_id="d", start=0, end=5, quote="Ahoy!")
    state = DocQAState(documents=[doc], answer=Answer(text="7319", citations=[good, bad]))
    out = nodes.verify_node()(state)
    assert out["answer"].citations == [good] and out["unverified"] == [bad]
    assert "dropped" in out["answer"].notes[0]


def test_router_example_sends_document_questions_to_ctxagent():
    spec = importlib.util.spec_from_file_location("graph_router", ROOT / "examples" / "graph_router.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    engine = scripted()
    agent = module.build_agent(engine)
    doc_turn = agent.invoke({"message": QUESTION, "attachments": [str(REPORT)]})
    assert doc_turn["route"] == "documents" and "26.4" in doc_turn["reply"]
    chat_turn = agent.invoke({"message": "What is 6 times 7?"})
    assert chat_turn["route"] == "calculator" and chat_turn["reply"] == "42"
    assert len(engine.calls) == 1, "only the document question reached the engine"


# -- long documents: the graph takes the recipe auto chooses, step by step where it can ---------------

NEEDLE = "The secret code to open the blue vault is 4817."
VAULT_QUESTION = "What is the secret code to open the blue vault?"
FILLER = "The harbour was quiet that morning and the boats rocked gently at their moorings. "


def _vault_reply(prompt: str) -> str:
    """Copies the needle when it sees it, answers from facts (as in test_recipes_flow)."""
    if prompt.startswith("Facts:") or "\nFacts:" in prompt:
        return "The code is 4817." if "4817" in prompt else "NONE"
    return NEEDLE if NEEDLE in prompt else "NONE"


@pytest.mark.parametrize(
    ("budget", "recipe", "path"),
    [
        ({"max_new_tokens": 32}, "auto:map_reduce", ["load", "plan", "read", "verify"]),
        ({"max_new_tokens": 32, "max_tokens": 5000}, "auto:retrieve_then_reason", ["load", "plan", "retrieve", "extract", "reason", "verify"]),
    ],
)
def test_long_document_graph_matches_the_sdk(budget, recipe, path, tmp_path, monkeypatch):
    from ctxagent.types import Budget

    monkeypatch.setenv("CTXAGENT_CACHE", str(tmp_path / "cache"))
    parts = [FILLER] * 600
    parts.insert(360, NEEDLE + " ")
    doc = Document(id="doc", text="".join(parts))
    sdk = ContextAgent(engine=ScriptedEngine(_vault_reply, context_window=512), budget=Budget(**budget)).ask(doc, VAULT_QUESTION)
    graph = doc_qa_graph(ScriptedEngine(_vault_reply, context_window=512))
    updates = list(graph.stream({"documents": [doc], "question": VAULT_QUESTION, "budget": budget}, stream_mode="updates"))
    assert [next(iter(u)) for u in updates] == path
    answer = updates[-1]["verify"]["answer"]
    assert answer.recipe == sdk.recipe == recipe
    assert answer.text == sdk.text and "4817" in answer.text
    assert answer.citations == sdk.citations and answer.citations[0].quote == NEEDLE
    assert answer.usage.engine_calls == sdk.usage.engine_calls


def test_compress_node_keeps_the_needle_and_answers_cite_the_original(tmp_path, monkeypatch):
    """A custom pipeline: load -> compress (real embedding compressor) -> answer -> verify."""
    monkeypatch.setenv("CTXAGENT_CACHE", str(tmp_path / "cache"))
    parts = [FILLER] * 300
    parts.insert(150, NEEDLE + " ")
    doc = Document(id="doc", text="".join(parts))
    engine = ScriptedEngine(lambda p: "The code is 4817." if "4817" in p else "NONE", context_window=512)
    state: dict = {"documents": [doc], "question": VAULT_QUESTION, "budget": {"max_new_tokens": 32}}
    for node in (nodes.load_node(), nodes.compress_node(engine, compressor="embedding"), nodes.answer_node(engine), nodes.verify_node()):
        state.update(node(state))
    assert NEEDLE in state["context"] and len(state["context"]) < len(doc.text) / 5
    answer = state["answer"]
    assert answer.text == "The code is 4817." and answer.citations[0].quote == NEEDLE
    assert doc.text[answer.citations[0].start : answer.citations[0].end] == NEEDLE and not state["unverified"]
