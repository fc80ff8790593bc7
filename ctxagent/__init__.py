"""ctxagent: ask questions of documents far longer than your model's context window.

    from ctxagent import ContextAgent
    answer = ContextAgent().ask("report.pdf", "What was the Q3 revenue?")

Names are imported on first use, so `import ctxagent` stays fast and pulls in
neither torch nor pydantic until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ContextAgent": "ctxagent.agent",
    "Document": "ctxagent.types",
    "Chunk": "ctxagent.types",
    "Budget": "ctxagent.types",
    "Citation": "ctxagent.types",
    "Answer": "ctxagent.types",
    "Usage": "ctxagent.types",
    "Trace": "ctxagent.types",
    "load_document": "ctxagent.loaders",
    "chunk_document": "ctxagent.chunking",
    "get_engine": "ctxagent.engines",
    "Corpus": "ctxagent.corpus.source",
    "CorpusIndex": "ctxagent.corpus.index",
}

if TYPE_CHECKING:  # pragma: no cover
    from ctxagent.agent import ContextAgent
    from ctxagent.chunking import chunk_document
    from ctxagent.corpus.index import CorpusIndex
    from ctxagent.corpus.source import Corpus
    from ctxagent.engines import get_engine
    from ctxagent.loaders import load_document
    from ctxagent.types import Answer, Budget, Chunk, Citation, Document, Trace, Usage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ctxagent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
