"""LangChain and LlamaIndex adapters over a real corpus index (BM25 and the real embedding compressor)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document as LCDocument
from langchain_tests.integration_tests import RetrieversIntegrationTests

from ctxagent.integrations.langchain import CtxagentAsk, CtxagentCompressor, CtxagentRetriever
from tests.corpus_support import write_austen_corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lc") / "docs"
    write_austen_corpus(folder, files=12)
    return folder


_INDEX_ROOT: dict[str, Path] = {}


class TestCtxagentRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's own standard retriever suite."""

    @pytest.fixture(autouse=True)
    def _corpus(self, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
        _INDEX_ROOT.setdefault("dir", corpus_dir)
        _INDEX_ROOT.setdefault("root", tmp_path_factory.mktemp("lc-index"))

    @property
    def retriever_constructor(self) -> type[CtxagentRetriever]:
        return CtxagentRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"corpus": str(_INDEX_ROOT["dir"]), "k": 2, "index_options": {"root": str(_INDEX_ROOT["root"]), "retriever": "bm25"}}

    @property
    def retriever_query_example(self) -> str:
        return "Emma and her father at Hartfield"


def test_retrieved_documents_are_exact_slices_of_the_corpus(corpus_dir: Path, tmp_path: Path) -> None:
    from ctxagent.batch.corpus import Corpus

    retriever = CtxagentRetriever(corpus=str(corpus_dir), k=3, index_options={"root": str(tmp_path), "retriever": "bm25"})
    docs = retriever.invoke("Mr. Woodhouse and Miss Taylor")
    corpus = Corpus(corpus_dir)
    assert len(docs) == 3
    for doc in docs:
        m = doc.metadata
        assert corpus.get(m["doc_id"]).text[m["start"] : m["end"]] == doc.page_content
        assert m["rank"] >= 1
    assert "emma" in docs[0].metadata["doc_id"]


def test_compressor_keeps_the_sentence_about_the_query_and_maps_spans_back() -> None:
    needle = "The Larkspur ferry leaves Kellynch harbour every morning at seven o'clock."
    from tests.corpus_support import paragraphs

    pool = paragraphs("persuasion")
    docs = [LCDocument(page_content=f"{pool[10]}\n\n{needle}\n\n{pool[11]}", metadata={"source": "a"}), LCDocument(page_content=pool[30], metadata={"source": "b"})]
    out = CtxagentCompressor(compressor="embedding", ratio=0.3).compress_documents(docs, "When does the Larkspur ferry leave?")
    assert out, "the compressor dropped everything"
    assert any(needle in d.page_content for d in out)
    total_in = sum(len(d.page_content) for d in docs)
    assert sum(len(d.page_content) for d in out) < 0.6 * total_in
    for d in out:
        source = next(x for x in docs if x.metadata["source"] == d.metadata["source"])
        for start, end in d.metadata["ctxagent_spans"]:
            assert source.page_content[start:end] in d.page_content


def test_ask_runnable_needs_a_source() -> None:
    from ctxagent.errors import InputError

    with pytest.raises(InputError, match="needs a source"):
        CtxagentAsk(agent=object()).invoke("Who is Emma?")


def test_llamaindex_retriever_and_postprocessor(corpus_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import QueryBundle

    from ctxagent.integrations.llamaindex import CtxagentLlamaRetriever, CtxagentNodePostprocessor

    retriever = CtxagentLlamaRetriever(str(corpus_dir), similarity_top_k=3, root=str(tmp_path), retriever="bm25")
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("Mr. Woodhouse and Miss Taylor")
    assert len(nodes) == 3 and all(n.score is not None for n in nodes)
    assert "Taylor" in nodes[0].node.get_content()
    post = CtxagentNodePostprocessor(compressor="embedding", ratio=0.3)
    assert isinstance(post, BaseNodePostprocessor)
    kept = post.postprocess_nodes(nodes, query_bundle=QueryBundle("Mr. Woodhouse and Miss Taylor"))
    assert kept and sum(len(n.node.get_content()) for n in kept) < sum(len(n.node.get_content()) for n in nodes)
    assert all(n.node.metadata["doc_id"] for n in kept)


def test_ask_runnable_answers_from_a_document_with_the_real_model(tmp_path: Path, engine) -> None:
    from ctxagent import Budget, ContextAgent

    note = tmp_path / "note.txt"
    note.write_text("The meeting with Mr. Knightley is on Thursday at noon in the library at Donwell Abbey.\n", encoding="utf-8")
    ask = CtxagentAsk(source=str(note), agent=ContextAgent(engine=engine, budget=Budget(max_new_tokens=24)), recipe="direct")
    out = ask.invoke("Where is the meeting with Mr. Knightley?")
    assert "Donwell" in out["text"] or "library" in out["text"], out["text"]
    assert out["citations"] and all(note.read_text(encoding="utf-8")[c["start"] : c["end"]] == c["quote"] for c in out["citations"])
    assert ask.batch(["When is the meeting?"])[0]["recipe"] == "direct"
