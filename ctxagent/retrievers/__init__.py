"""Retrievers: find the chunks that answer a query, by name.

    from ctxagent.retrievers import get_retriever, cached_index
    retriever = get_retriever("hybrid")          # or "bm25", "dense"; model=... for dense/hybrid
    retriever.index(chunks)
    hits = retriever.search("What was the Q3 revenue?", k=5)   # list[ScoredChunk], best first
    retriever.save("idx"); again = Retriever.load("idx")
    retriever = cached_index("dense", chunks)    # embedded once, reloaded from disk afterwards

Add your own with `@ctxagent.retrievers.register("name")` on a `Retriever` subclass, or
through the `ctxagent.retrievers` entry-point group. Importing this package imports no
torch: the backends load on first use.
"""

from __future__ import annotations

from typing import Any

from ctxagent.registry import Registry
from ctxagent.retrievers.base import (
    IndexCorruptedError,
    IndexFileError,
    IndexMismatchError,
    NotIndexedError,
    Retriever,
    ScoredChunk,
    corpus_hash,
)

registry: Registry[Retriever] = Registry("retriever")
register = registry.register
registry.register_lazy("bm25", "ctxagent.retrievers.bm25:BM25Retriever")
registry.register_lazy("dense", "ctxagent.retrievers.dense:DenseRetriever")
registry.register_lazy("hybrid", "ctxagent.retrievers.hybrid:HybridRetriever")

DEFAULT_RETRIEVER = "hybrid"


def get_retriever(name: str = DEFAULT_RETRIEVER, **options: Any) -> Retriever:
    """Build the (unindexed) retriever registered under `name` with its options."""
    return registry.get(name)(**options)


def load_retriever(path: Any, **options: Any) -> Retriever:
    """Load a saved index of any registered kind (same as `Retriever.load(path)`)."""
    return Retriever.load(path, **options)


from ctxagent.retrievers.store import cached_index, index_cache_path  # after get_retriever, which store imports

__all__ = [
    "DEFAULT_RETRIEVER",
    "IndexCorruptedError",
    "IndexFileError",
    "IndexMismatchError",
    "NotIndexedError",
    "Retriever",
    "ScoredChunk",
    "cached_index",
    "corpus_hash",
    "get_retriever",
    "index_cache_path",
    "load_retriever",
    "register",
    "registry",
]
