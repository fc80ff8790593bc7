"""Retrieval for recipes: index a document's chunks with a registered retriever and search.

A thin seam over `ctxagent.retrievers`, so recipes name a retriever ("bm25",
"dense", "hybrid" or a user's own) and get scored chunks back, best first.

Cost follows size. Up to `DENSE_ALL_MAX_CHUNKS` chunks, dense and hybrid retrievers
embed every chunk once and keep the index in the on-disk cache. Beyond that (a 2 MB
file is ~2,600 chunks, minutes of embedding on a small CPU), embedding everything does
not pay: BM25 indexes the whole (cached on disk by content, so the next question loads
it), and the sentence encoder embeds only BM25's `SHORTLIST` best chunks per question,
fused with BM25 by the hybrid retriever's own fusion (`convex_fusion`: normalised BM25
squared plus cosine). Embeddings of shortlisted chunks are kept for later questions in the
process, up to `EMBEDDED_MAX` of them (the oldest go first).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from ctxagent.cancel import SlicePace

from ctxagent.types import Chunk

log = logging.getLogger(__name__)

# Above this many chunks, dense retrieval reranks a BM25 shortlist instead of embedding all.
DENSE_ALL_MAX_CHUNKS = 256
# Chunks per question that the sentence encoder embeds in shortlist mode.
SHORTLIST = 32
# Chunks encoded between two looks at the run's time budget and cancel token.
ENCODE_SLICE = 8
_ENCODE_PACE = SlicePace()


class ChunkIndex:
    """A retriever over one list of chunks, built once per recipe run (or loaded from the cache)."""

    def __init__(self, retriever: str, chunks: Sequence[Chunk], **options: Any) -> None:
        from ctxagent.retrievers import cached_index, get_retriever

        self.name = retriever
        self.chunks = list(chunks)
        self.position = {(c.doc_id, c.index): i for i, c in enumerate(self.chunks)}
        self.shortlist: _Shortlist | None = None
        large = len(self.chunks) > DENSE_ALL_MAX_CHUNKS
        if retriever in ("dense", "hybrid") and large:
            self.shortlist = _Shortlist(self.chunks, dense_only=retriever == "dense", **options)
            self.retriever = self.shortlist.bm25
        elif retriever == "bm25" and not large:  # indexing a few chunks is faster than loading a saved index
            self.retriever = get_retriever(retriever, **options)
            self.retriever.index(self.chunks)
        else:  # embeddings, and large BM25 indexes, are worth keeping across questions and runs
            self.retriever = cached_index(retriever, self.chunks, **options)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(position in `chunks`, score) of the best `k` hits, best first."""
        if self.shortlist is not None:
            return self.shortlist.search(query, min(k, len(self.chunks)))
        hits = self.retriever.search(query, min(k, len(self.chunks)))
        return [(self.position[(h.chunk.doc_id, h.chunk.index)], h.score) for h in hits]


# Shortlisted chunks' embeddings kept for later questions (384 floats each for MiniLM: ~30 MB at most).
EMBEDDED_MAX = 20_000


class _Recent(OrderedDict):
    """A dict that keeps its `limit` most recently stored items."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


# Embeddings of shortlisted chunks, by chunk identity and encoder.
_EMBEDDED: dict[tuple[str, str], np.ndarray] = _Recent(EMBEDDED_MAX)


class _Shortlist:
    """BM25 over every chunk; the sentence encoder over BM25's best few, fused as `hybrid` fuses."""

    def __init__(self, chunks: list[Chunk], dense_only: bool = False, lexical_exponent: float = 2.0, **options: Any) -> None:
        from ctxagent.retrievers import cached_index
        from ctxagent.retrievers.bm25 import BM25Retriever
        from ctxagent.retrievers.dense import DenseRetriever
        from ctxagent.retrievers.hybrid import convex_fusion

        self.fuse = convex_fusion
        bm25_keys = {"k1", "b", "stopwords", "stemmer"}
        self.chunks, self.dense_only, self.lexical_exponent = chunks, dense_only, lexical_exponent
        self.bm25 = cached_index(BM25Retriever(**{k: v for k, v in options.items() if k in bm25_keys}), chunks)
        dense_keys = {"model", "device", "batch_size", "query_prompt", "document_prompt", "query_threads"}
        self.dense = DenseRetriever(**{k: v for k, v in options.items() if k in dense_keys})
        self.embedded = 0  # chunks encoded by this index (tests count them)

    def _embeddings(self, positions: list[int]) -> np.ndarray:
        keys = {i: (hashlib.sha1(self.chunks[i].text.encode()).hexdigest(), self.dense.model_id) for i in positions}
        missing = [i for i in positions if keys[i] not in _EMBEDDED]
        # a slice at a time: a run out of time stops between slices, keeping the slices done
        for at, vectors in self.dense.encode_in_slices([self.chunks[i].text for i in missing], ENCODE_SLICE, _ENCODE_PACE):
            part = missing[at : at + len(vectors)]
            self.embedded += len(part)
            for i, vector in zip(part, vectors):
                _EMBEDDED[keys[i]] = vector
        return np.stack([_EMBEDDED[keys[i]] for i in positions])

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        lexical = self.bm25.normalized_scores([query])[0]
        order = np.argsort(-lexical, kind="stable")
        positions = [int(i) for i in order[:SHORTLIST] if lexical[i] > 0] or [int(i) for i in order[:SHORTLIST]]
        query_vector = self.dense.encode([query], self.dense.query_prompt)[0]
        cosine = self._embeddings(positions) @ query_vector
        fused = cosine if self.dense_only else self.fuse(lexical[positions], cosine, lexical_exponent=self.lexical_exponent)
        best = np.argsort(-fused, kind="stable")[:k]
        return [(positions[i], float(fused[i])) for i in best]
