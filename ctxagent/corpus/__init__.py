"""Corpora: one question over many documents.

    from ctxagent import ContextAgent, Corpus
    ContextAgent().ask(Corpus("contracts/"), "Which contract has a termination fee above 10%?")

`Corpus` (a folder, or a JSONL of documents) is the batch runner's; `CorpusIndex` keeps
its persistent, incrementally updated search index; `ask_corpus` answers across it.
"""

from ctxagent.batch.corpus import Corpus
from ctxagent.corpus.index import CorpusIndex, IndexReport, default_index_name

__all__ = ["Corpus", "CorpusIndex", "IndexReport", "default_index_name"]
