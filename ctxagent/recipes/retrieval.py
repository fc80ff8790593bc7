"""Retrieval for recipes: index a document's chunks with a registered retriever and search.

A thin seam over `ctxagent.retrievers`, so recipes name a retriever ("bm25",
"dense", "hybrid" or a user's own) and get scored chunks back, best first. Dense
and hybrid retrievers go through the retrievers' on-disk cache, so a document is
embedded once across questions and runs.
"""

from __future__ import annotations

from typing import Any, Sequence

from ctxagent.types import Chunk


class ChunkIndex:
    """A retriever over one list of chunks, built once per recipe run."""

    def __init__(self, retriever: str, chunks: Sequence[Chunk], **options: Any) -> None:
        from ctxagent.retrievers import cached_index, get_retriever

        self.name = retriever
        self.chunks = list(chunks)
        self.position = {(c.doc_id, c.index): i for i, c in enumerate(self.chunks)}
        if retriever == "bm25":  # indexing is faster than loading and checking a saved index
            self.retriever = get_retriever(retriever, **options)
            self.retriever.index(self.chunks)
        else:  # embeddings are worth keeping: a document is embedded once across runs
            self.retriever = cached_index(retriever, self.chunks, **options)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(position in `chunks`, score) of the best `k` hits, best first."""
        hits = self.retriever.search(query, min(k, len(self.chunks)))
        return [(self.position[(h.chunk.doc_id, h.chunk.index)], h.score) for h in hits]

