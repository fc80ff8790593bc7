"""`compress_then_answer`: compress the documents for the question, then answer with `direct`.

Any registered compressor shrinks the documents to what fits the context window
(or to a chosen ratio); `direct` answers over the compressed text; and every
citation, found in the compressed text, is mapped back through the compressor's
span map to exact offsets in the original documents.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from ctxagent.chunking import chunk_document
from ctxagent.compressors import Compressor, get_compressor
from ctxagent.engines.base import TokenScores
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.defaults import COMPRESS_CHUNK_TOKENS, TEMPLATE_SLACK
from ctxagent.recipes.direct import DirectRecipe
from ctxagent.recipes.prompts import answer_prompt
from ctxagent.types import Answer, Document

COMPRESSED_ID = "compressed"


class _ContextScorer:
    """Routes a compressor's model calls through the RunContext, so they count against the Budget."""

    def __init__(self, ctx: RunContext, step: str) -> None:
        self.ctx, self.step = ctx, step

    def count_tokens(self, text: str) -> int:
        return self.ctx.count_tokens(text)

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        return self.ctx.score(texts, contexts, step=self.step)


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
        window = ctx.engine.context_window
        room = window - ctx.budget.max_new_tokens - ctx.prompt_tokens(answer_prompt("", question)) - TEMPLATE_SLACK
        began = time.perf_counter()
        size = max(32, min(self.chunk_tokens, window // 4))
        chunks = [c for doc in documents for c in chunk_document(doc, ctx.count_tokens, max_tokens=size)]
        # Chunk indexes restart per document; the compressor only needs their order.
        compressor = self.compressor
        if isinstance(compressor, str):
            compressor = get_compressor(compressor, scorer=_ContextScorer(ctx, f"compress:{compressor}"), **self.options)
        compressed = compressor.compress(chunks, question, budget=room + ctx.count_tokens(question), ratio=self.ratio)
        ctx.trace.add(
            "compress",
            seconds=round(time.perf_counter() - began, 3),
            method=compressed.method,
            original_tokens=compressed.original_tokens,
            compressed_tokens=compressed.compressed_tokens,
            ratio=compressed.ratio,
            spans=len(compressed.spans),
        )
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
