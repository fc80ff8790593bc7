"""Corpora: one question over many documents.

    from ctxagent import ContextAgent, Corpus
    ContextAgent().ask(Corpus("contracts/"), "Which contract has a termination fee above 10%?")

`Corpus` (source.py: a folder, or a JSONL of documents) holds the documents; `CorpusIndex`
(index.py) keeps their persistent, incrementally updated search index, and `open_index` is
the one way every entry point (SDK, CLI, batch runner, integrations) opens it; `ask_corpus`
(ask.py) answers across it.
"""

from ctxagent.corpus.index import CorpusIndex, IndexReport, default_index_name, open_index
from ctxagent.corpus.source import Corpus

__all__ = ["Corpus", "CorpusIndex", "IndexReport", "default_index_name", "open_index"]
