"""Prompt compressors: shorten a document to what matters for one question.

    from ctxagent.compressors import get_compressor
    compressed = get_compressor("perplexity", scorer=engine).compress(chunks, question, ratio=0.25)
    compressed.text, compressed.ratio, compressed.spans      # spans map back to the source

Built in: `perplexity` (question-aware, coarse-to-fine, LongLLMLingua-style),
`self_information` (Selective Context), `embedding` (sentence filter by
similarity to the question). Add your own with
`@ctxagent.compressors.register("name")` on a class implementing `Compressor`,
or through the `ctxagent.compressors` entry-point group.
"""

from __future__ import annotations

from typing import Any

from ctxagent.compressors.base import Compressed, Compressor, KeptSpan, SourceSpan
from ctxagent.registry import Registry

registry: Registry[Compressor] = Registry("compressor")
register = registry.register
registry.register_lazy("perplexity", "ctxagent.compressors.perplexity:PerplexityCompressor")
registry.register_lazy("self_information", "ctxagent.compressors.self_information:SelfInformationCompressor")
registry.register_lazy("embedding", "ctxagent.compressors.embedding:EmbeddingCompressor")

DEFAULT_COMPRESSOR = "perplexity"


def get_compressor(name: str = DEFAULT_COMPRESSOR, **options: Any) -> Compressor:
    """Build the compressor registered under `name` (options: scorer=engine, and the compressor's own)."""
    return registry.get(name)(**options)


__all__ = ["Compressed", "Compressor", "KeptSpan", "SourceSpan", "get_compressor", "register", "registry"]
