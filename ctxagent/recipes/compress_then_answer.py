"""`compress_then_answer`: compress the documents for the question, then answer with `direct`.

Any registered compressor shrinks the documents to what fits the context window
(or to a chosen ratio); `direct` answers over the compressed text; and every
citation, found in the compressed text, is mapped back through the compressor's
span map to exact offsets in the original documents.
"""

from __future__ import annotations

from typing import Any, Sequence

from ctxagent.compressors import Compressor
from ctxagent.defaults import COMPRESS_CHUNK_TOKENS
from ctxagent.recipes import register, steps
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.direct import DirectRecipe
from ctxagent.types import Answer, Document

COMPRESSED_ID = "compressed"


@register("compress_then_answer")
class CompressThenAnswerRecipe:
    """compressor: a registered name or a Compressor instance.
    ratio: share of the documents' tokens to keep (0.25 = 4x); None compresses just enough to fit.
    chunk_tokens: chunk size the compressor ranks (smaller = finer, a little more scoring).
    """

    name = "compress_then_answer"

    def __init__(self, compressor: str | Compressor = "perplexity", ratio: float | None = None, chunk_tokens: int = COMPRESS_CHUNK_TOKENS, **options: Any) -> None:
        self.compressor = compressor
        self.ratio = ratio
        self.chunk_tokens = chunk_tokens
        self.options = options

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        # Chunk indexes restart per document; the compressor only needs their order.
        chunks = steps.compress_chunks(ctx, documents, self.chunk_tokens)
        compressed = steps.compress(ctx, chunks, question, self.compressor, ratio=self.ratio, options=self.options)
        inner = DirectRecipe().run(ctx, [Document(id=COMPRESSED_ID, text=compressed.text)], question)
        for step in inner.trace.steps:  # the evidence shown was compressed text: record where it came from
            if step.name == "evidence":
                step.detail["spans"] = [[s.doc_id, s.start, s.end] for _, start, end in step.detail["spans"] for s in compressed.to_source(start, end)]
        citations = [cite for c in inner.citations for cite in compressed.citations_for(c.start, c.end, documents)]
        notes = list(inner.notes)
        notes.append(
            f"read a {compressed.factor:.1f}x compressed form ({compressed.compressed_tokens} of {compressed.original_tokens} tokens, "
            f"method '{compressed.method}'); citations point into the original documents"
        )
        return inner.model_copy(update={"recipe": self.name, "citations": citations, "notes": notes})
