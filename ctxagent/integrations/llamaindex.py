"""LlamaIndex adapters: a retriever over a ctxagent corpus index and a compressing node postprocessor.

    retriever = CtxagentLlamaRetriever(corpus="contracts/", similarity_top_k=4)
    postprocessor = CtxagentNodePostprocessor(compressor="embedding", ratio=0.3)

Nodes carry `doc_id`, `start`, `end` in their metadata and the retriever's score.
"""

from __future__ import annotations

from typing import Any, Optional

try:
    from llama_index.core.bridge.pydantic import Field
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - depends on the extra
    from ctxagent.errors import EngineNotInstalled

    raise EngineNotInstalled('the LlamaIndex adapters need llama-index-core: `pip install "ctxagent[llamaindex]"`') from exc

from ctxagent.integrations.common import compress_texts, open_corpus_index


class CtxagentLlamaRetriever(BaseRetriever):
    """The best `similarity_top_k` chunks of a ctxagent corpus index, as LlamaIndex nodes."""

    def __init__(self, corpus: Any, similarity_top_k: int = 4, update: bool = True, **index_options: Any) -> None:
        super().__init__()
        if similarity_top_k < 1:
            from ctxagent.errors import InputError

            raise InputError(f"similarity_top_k must be at least 1, got {similarity_top_k}")
        self.corpus, self.similarity_top_k, self.update, self.index_options = corpus, similarity_top_k, update, index_options
        self._index: Any = None

    @property
    def index(self) -> Any:
        if self._index is None:
            self._index = open_corpus_index(self.corpus, self.update, **self.index_options)
        return self._index

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.index.search(query_bundle.query_str, self.similarity_top_k)
        return [
            NodeWithScore(
                node=TextNode(
                    id_=f"{h.chunk.doc_id}#{h.chunk.index}", text=h.chunk.text,
                    metadata={"doc_id": h.chunk.doc_id, "start": h.chunk.start, "end": h.chunk.end},
                    start_char_idx=h.chunk.start, end_char_idx=h.chunk.end,
                ),
                score=h.score,
            )
            for h in hits
        ]


class CtxagentNodePostprocessor(BaseNodePostprocessor):
    """Compresses retrieved nodes to what matters for the query with a ctxagent compressor,
    keeping `ratio` of their tokens; nodes with nothing kept are dropped."""

    compressor: str = Field(default="embedding")
    ratio: float = Field(default=0.5, gt=0, le=1)
    options: dict = Field(default_factory=dict)

    @classmethod
    def class_name(cls) -> str:
        return "CtxagentNodePostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: Optional[QueryBundle] = None) -> list[NodeWithScore]:
        if query_bundle is None:
            from ctxagent.errors import InputError

            raise InputError("CtxagentNodePostprocessor compresses for a query: pass query_str or query_bundle")
        texts = [n.node.get_content() for n in nodes]
        kept = compress_texts(texts, query_bundle.query_str, self.compressor, self.ratio, self.options)
        out = []
        for k in kept:
            source = nodes[k.position]
            node = TextNode(id_=source.node.node_id, text=k.text, metadata={**source.node.metadata, "ctxagent_spans": k.spans})
            out.append(NodeWithScore(node=node, score=source.score))
        return out


__all__ = ["CtxagentLlamaRetriever", "CtxagentNodePostprocessor"]
