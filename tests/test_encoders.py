"""One sentence encoder per process: dense retrieval, the embedding compressor and evidence
selection share MiniLM (ctxagent.encoders), whatever name each gives it."""

from __future__ import annotations

import pytest

pytest.importorskip("sentence_transformers")


def test_minilm_is_loaded_once_per_process(monkeypatch):
    from collections import Counter

    from ctxagent import encoders
    from ctxagent.chunking import chunk_document
    from ctxagent.compressors import get_compressor
    from ctxagent.recipes.evidence import SentencePool
    from ctxagent.retrievers import get_retriever
    from ctxagent.types import Document

    monkeypatch.setattr(encoders, "_models", {})  # this process as if new: nothing loaded yet
    monkeypatch.setattr(encoders, "_loads", Counter())
    text = "The vault code is 7319. The meeting moved to Friday. Lunch is at noon."
    chunks = chunk_document(Document(id="memo", text=text), lambda t: len(t.split()), max_tokens=8)
    dense = get_retriever("dense")  # "sentence-transformers/all-MiniLM-L6-v2"
    dense.index(chunks)
    hit = dense.search("What is the vault code?", 1)[0].chunk.text
    kept = get_compressor("embedding").compress(chunks, "What is the vault code?", ratio=0.5).text  # "all-MiniLM-L6-v2"
    pool = SentencePool(chunks)
    best = pool.texts[int(pool.dense("What is the vault code?", list(range(len(pool.texts)))).argmax())]
    assert list(encoders.loads().values()) == [1], encoders.loads()  # three users, one load
    assert "7319" in hit and "7319" in kept and "7319" in best, (hit, kept, best)
