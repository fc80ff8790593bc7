"""One pipeline: the same question over the same PDF through every entry point gives the same answer.

ContextAgent.ask, the prebuilt LangGraph graph, `ctxagent ask`, a Corpus of that one file and
`ctxagent serve` (its FastAPI app, in process) all run the recipes' step functions; the answer
text and the citations, PDF page numbers included, must match. Once with a scripted engine
(control flow), once with the real embedded model. And stream() over a Corpus shows its steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctxagent import ContextAgent
from ctxagent.corpus import Corpus
from ctxagent.engines import register
from ctxagent.loaders import load_document
from ctxagent.types import Answer
from tests.fakes import ScriptedEngine

MEMO = Path(__file__).parent / "data" / "memo.pdf"
QUESTION = "What is the vault code?"


def _cited(citations: list[Any]) -> list[tuple[str, int, int, str, int | None]]:
    return [
        (c["doc_id"], c["start"], c["end"], c["quote"], c["page"]) if isinstance(c, dict) else (c.doc_id, c.start, c.end, c.quote, c.page)
        for c in citations
    ]


def _every_entry_point(engine: Any, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[str, list, str | None]]:
    """(answer text, citations, basis) from each entry point, all over MEMO with `engine`."""
    register(name)(lambda **_: engine)  # so the CLI's --engine NAME gets this very engine
    got: dict[str, tuple[str, list, str | None]] = {}

    sdk = ContextAgent(engine=engine).ask(MEMO, QUESTION)
    got["sdk"] = (sdk.text, _cited(sdk.citations), sdk.basis)

    graph_mod = pytest.importorskip("ctxagent.graph")
    pytest.importorskip("langgraph")
    graph: Answer = graph_mod.doc_qa_graph(engine).invoke({"sources": [str(MEMO)], "question": QUESTION})["answer"]
    got["graph"] = (graph.text, _cited(graph.citations), graph.basis)

    from ctxagent.cli import main

    capsys.readouterr()
    assert main(["ask", str(MEMO), QUESTION, "--engine", name, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    got["cli"] = (cli["text"], _cited(cli["citations"]), cli["basis"])

    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(MEMO, folder / MEMO.name)
    corpus = ContextAgent(engine=engine).ask(Corpus(folder), QUESTION)
    got["corpus"] = (corpus.text, _cited(corpus.citations), corpus.basis)

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from ctxagent.server import ServerSettings
    from ctxagent.server.app import create_app

    document = load_document(MEMO).model_dump(mode="json")
    with TestClient(create_app(engine, ServerSettings())) as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "ctxagent/auto", "messages": [{"role": "user", "content": QUESTION}], "documents": [document]},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    got["serve"] = (body["choices"][0]["message"]["content"], _cited(body["ctxagent"]["citations"]), body["ctxagent"]["basis"])
    return got


def _assert_same(got: dict[str, tuple[str, list, str | None]]) -> None:
    text, citations, basis = got["sdk"]
    assert citations and all(page is not None for *_, page in citations), got["sdk"]  # a PDF: pages are known
    assert basis is not None, "every library recipe says how its answer stands to its citations"
    for entry, answer in got.items():
        assert answer == (text, citations, basis), f"{entry} differs from the SDK: {answer} vs {(text, citations, basis)}"


def test_every_entry_point_gives_the_same_answer_with_a_scripted_engine(tmp_path, capsys):
    engine = ScriptedEngine(lambda prompt: "The vault code is 7319.", context_window=2048)
    got = _every_entry_point(engine, "one-pipeline-scripted", tmp_path, capsys)
    _assert_same(got)
    assert got["sdk"][1] == [("memo.pdf", 19, 42, "The vault code is 7319.", 1)]


@pytest.mark.slow
def test_every_entry_point_gives_the_same_answer_with_the_embedded_model(engine, tmp_path, capsys):
    got = _every_entry_point(engine, "one-pipeline-embedded", tmp_path, capsys)
    _assert_same(got)
    assert "7319" in got["sdk"][0] or "7319" in " ".join(c[3] for c in got["sdk"][1])


def test_stream_over_a_corpus_shows_its_steps(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(MEMO, folder / MEMO.name)
    engine = ScriptedEngine(lambda prompt: "The vault code is 7319.", context_window=2048)
    events = list(ContextAgent(engine=engine).stream(Corpus(folder), QUESTION))
    steps = [e.name for e in events if e.type == "step"]
    assert {"corpus_retrieve", "answer", "corpus_document"} <= set(steps), steps
    assert events[-1].type == "answer" and events[-1].answer.citations[0].page == 1


def test_the_extract_node_reuses_the_retrieve_nodes_chunks_and_index(monkeypatch):
    pytest.importorskip("langgraph")
    from ctxagent.graph import DocQAState, nodes
    from ctxagent.recipes import retrieval
    from ctxagent.types import Document
    from tests.texts import text_with_fact

    built = []
    original = retrieval.ChunkIndex.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(retrieval.ChunkIndex, "__init__", counting)
    engine = ScriptedEngine(lambda prompt: "The vault code is 7319.", context_window=512)
    document = Document(id="long", text=text_with_fact("The vault code is 7319.", engine.count_tokens, 3000))
    state = DocQAState(documents=[document], question=QUESTION)
    state = state.model_copy(update=nodes.retrieve_node(engine, retriever="bm25")(state))
    state = state.model_copy(update=nodes.extract_node(engine, retriever="bm25")(state))
    assert len(built) == 1  # chunked and indexed once, by the retrieve node
    assert any("7319" in f.citation.quote for f in state.facts)
