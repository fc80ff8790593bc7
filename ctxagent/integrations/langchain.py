"""LangChain adapters: a retriever over a corpus index, a document compressor, an ask Runnable.

    retriever = CtxagentRetriever(corpus="contracts/", k=4)        # a BaseRetriever
    compressor = CtxagentCompressor(compressor="embedding", ratio=0.3)  # a BaseDocumentCompressor
    ask = CtxagentAsk(source="contracts/")                          # Runnable: question -> answer dict

Retrieved documents carry `doc_id`, `start`, `end`, `score` and `rank` in their metadata,
so `corpus.get(doc_id).text[start:end] == page_content`. Compressed documents keep their
metadata plus `ctxagent_spans`, the (start, end) slices of the original page_content kept.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
    from langchain_core.documents import BaseDocumentCompressor
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import Runnable, RunnableConfig
    from pydantic import ConfigDict, Field, PrivateAttr
except ImportError as exc:  # pragma: no cover - depends on the extra
    from ctxagent.errors import EngineNotInstalled

    raise EngineNotInstalled('the LangChain adapters need langchain-core: `pip install "ctxagent[langchain]"`') from exc

from ctxagent.integrations.common import compress_texts, open_corpus_index


class CtxagentRetriever(BaseRetriever):
    """The best `k` chunks of a ctxagent corpus index (hybrid BM25 + dense by default).

    corpus: a folder, a .jsonl of documents, a Corpus or a CorpusIndex. The index is
    updated incrementally on first use (`update=False`: use the saved one as is).
    index_options go to CorpusIndex (name=..., retriever="bm25", ...).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    corpus: Any
    k: int = Field(default=4, ge=1)
    update: bool = True
    index_options: dict[str, Any] = Field(default_factory=dict)
    _index: Any = PrivateAttr(default=None)

    @property
    def index(self) -> Any:
        if self._index is None:
            self._index = open_corpus_index(self.corpus, self.update, **self.index_options)
        return self._index

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any) -> list[LCDocument]:
        k = int(kwargs.get("k", self.k))
        return [
            LCDocument(
                page_content=hit.chunk.text,
                metadata={"doc_id": hit.chunk.doc_id, "start": hit.chunk.start, "end": hit.chunk.end, "score": hit.score, "rank": hit.rank},
            )
            for hit in self.index.search(query, k)
        ]


class CtxagentCompressor(BaseDocumentCompressor):
    """Shortens retrieved documents to what matters for the query with a ctxagent compressor
    ("embedding" by default: no LLM needed; "perplexity" or "self_information" score with the
    embedded model unless `options={"scorer": engine}`), keeping `ratio` of their tokens."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: str = "embedding"
    ratio: float = Field(default=0.5, gt=0, le=1)
    options: dict[str, Any] = Field(default_factory=dict)

    def compress_documents(self, documents: Sequence[LCDocument], query: str, callbacks: Optional[Callbacks] = None) -> Sequence[LCDocument]:
        kept = compress_texts([d.page_content for d in documents], query, self.compressor, self.ratio, self.options)
        return [
            LCDocument(page_content=k.text, metadata={**documents[k.position].metadata, "ctxagent_spans": k.spans}, id=documents[k.position].id)
            for k in kept
        ]


class CtxagentAsk(Runnable[Any, dict]):
    """A Runnable that asks ctxagent: input a question (str) or {"question": ..., "source": ...};
    output the Answer as a dict (text, citations, usage, trace, notes).

    source: a file path, a folder or .jsonl (asked as a corpus), a Corpus, or ctxagent
    Documents; agent: a ContextAgent (default: the embedded engine, recipe auto).
    """

    def __init__(self, source: Any = None, agent: Any = None, **ask_options: Any) -> None:
        from ctxagent.agent import ContextAgent

        self.source, self.agent, self.ask_options = source, agent or ContextAgent(), ask_options

    def invoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> dict:
        question, source = (input, self.source) if isinstance(input, str) else (input.get("question"), input.get("source", self.source))
        if source is None:
            from ctxagent.errors import InputError

            raise InputError("CtxagentAsk needs a source: CtxagentAsk(source=...) or invoke({'question': ..., 'source': ...})")
        answer = self.agent.ask(_as_source(source), question, **{**self.ask_options, **kwargs})
        return answer.model_dump(mode="json")


def _as_source(source: Any) -> Any:
    """A folder or .jsonl path is a corpus; anything else goes to ContextAgent.ask as it is."""
    from pathlib import Path

    if isinstance(source, (str, Path)) and (Path(source).is_dir() or Path(source).suffix.lower() in (".jsonl", ".ndjson")):
        from ctxagent.corpus import Corpus

        return Corpus(source)
    return source


__all__ = ["CtxagentAsk", "CtxagentCompressor", "CtxagentRetriever"]
