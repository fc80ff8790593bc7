"""The Compressor protocol and what every compressor hands back.

A compressor shortens the document part of a prompt so that a small-context model
can read it, keeping what matters for one question. The result is never free
text: it is built only from verbatim slices of the source, and `Compressed.spans`
records where each slice came from, so a quote the model makes from the
compressed text maps back to exact offsets in the original document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from pydantic import BaseModel, Field, model_validator

from ctxagent.engines.base import TokenScores
from ctxagent.errors import InputError
from ctxagent.types import Chunk, Citation, Document

# Between two kept slices of one chunk; between slices of different chunks.
GAP = " "
CHUNK_BREAK = "\n\n"


class KeptSpan(BaseModel):
    """`compressed.text[offset : offset + end - start] == source(doc_id).text[start:end]`."""

    doc_id: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    offset: int = Field(ge=0, description="where this slice begins in the compressed text")

    @property
    def length(self) -> int:
        return self.end - self.start


class SourceSpan(BaseModel):
    doc_id: str
    start: int
    end: int


class Compressed(BaseModel):
    """A compressed context: its text, how much it kept, and where every kept slice came from."""

    text: str
    method: str
    question: str
    ratio: float = Field(description="compressed tokens / original tokens of the context (the question and instruction not counted)")
    original_tokens: int
    compressed_tokens: int
    spans: list[KeptSpan] = Field(default_factory=list)
    details: dict[str, float | int | str] = Field(default_factory=dict, description="method-specific facts for the trace")

    @model_validator(mode="after")
    def _spans_fit_text(self) -> "Compressed":
        for span in self.spans:
            if span.offset + span.length > len(self.text):
                raise ValueError(f"kept span {span} runs past the compressed text ({len(self.text)} characters)")
        return self

    @property
    def factor(self) -> float:
        """Compression as 'N x': original tokens per compressed token."""
        return self.original_tokens / max(1, self.compressed_tokens)

    def to_source(self, start: int, end: int, merge_gap: int = 0) -> list[SourceSpan]:
        """Source spans covering compressed-text characters [start, end).

        Text that lies between kept slices (the separators this module inserts) has
        no source and is skipped. With `merge_gap` > 0, consecutive pieces of one
        document less than that many source characters apart are joined into one
        span, which then also covers the words compression dropped between them:
        a citation that quotes the source as it stands.
        """
        pieces: list[SourceSpan] = []
        for span in self.spans:
            lo, hi = max(start, span.offset), min(end, span.offset + span.length)
            if lo < hi:
                pieces.append(SourceSpan(doc_id=span.doc_id, start=span.start + lo - span.offset, end=span.start + hi - span.offset))
        if merge_gap <= 0:
            return pieces
        merged: list[SourceSpan] = []
        for piece in pieces:
            last = merged[-1] if merged else None
            if last and last.doc_id == piece.doc_id and 0 <= piece.start - last.end <= merge_gap:
                merged[-1] = SourceSpan(doc_id=last.doc_id, start=last.start, end=piece.end)
            else:
                merged.append(piece)
        return merged

    def citations_for(self, start: int, end: int, documents: Sequence[Document], merge_gap: int = 200) -> list[Citation]:
        """Citations into the original documents for a span of the compressed text."""
        by_id = {d.id: d for d in documents}
        return [
            Citation(doc_id=s.doc_id, start=s.start, end=s.end, quote=by_id[s.doc_id].text[s.start : s.end])
            for s in self.to_source(start, end, merge_gap)
            if s.doc_id in by_id
        ]


class Scorer(Protocol):
    """What a perplexity-based compressor needs of a model: an Engine, or a RunContext adapter."""

    def count_tokens(self, text: str) -> int: ...

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]: ...


class ModelScored:
    """For compressors that score with a language model: the given scorer, or the embedded
    default engine (`hf`), loaded on first use so building a compressor stays cheap."""

    _scorer: Scorer | None = None

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            from ctxagent.engines import get_engine

            self._scorer = get_engine()
        return self._scorer


@runtime_checkable
class Compressor(Protocol):
    name: str

    def compress(
        self,
        chunks: Sequence[Chunk],
        question: str,
        budget: int | None = None,
        *,
        ratio: float | None = None,
        instruction: str = "",
    ) -> Compressed:
        """Keep what matters for `question` within `budget` tokens (instruction + context + question)
        and/or `ratio` of the context's tokens; the instruction and question are never compressed."""
        ...


# -- shared building blocks ---------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A slice of one chunk that a compressor keeps: `chunk.text[start - chunk.start : end - chunk.start]`."""

    chunk: int  # position of the chunk in the input sequence
    start: int  # source offsets
    end: int


def check_inputs(chunks: Sequence[Chunk], question: str) -> None:
    if not question or not question.strip():
        raise InputError("the question is empty: compressors keep what matters for a question, so pass one")
    if not chunks or not any(c.text.strip() for c in chunks):
        raise InputError("the document is empty: there is nothing to compress (check that the file has text)")


def context_target(
    original_tokens: int,
    fixed_tokens: int,
    budget: int | None,
    ratio: float | None,
) -> int:
    """Tokens the compressed context may take, from a prompt budget and/or a ratio.

    fixed_tokens: what the instruction and question cost; they are kept whole, so
    a budget that cannot even hold them is an error, not a silent overrun.
    """
    if budget is None and ratio is None:
        raise InputError("give a token budget or a target ratio (ratio=0.25 keeps a quarter of the context: 4x)")
    target = original_tokens
    if ratio is not None:
        if not 0 < ratio <= 1:
            raise InputError(f"ratio must be in (0, 1] (the share of context tokens to keep; 0.25 means 4x), got {ratio}")
        target = min(target, max(1, int(round(ratio * original_tokens))))
    if budget is not None:
        if budget <= fixed_tokens:
            raise InputError(
                f"budget of {budget} tokens is smaller than the question and instruction alone ({fixed_tokens} tokens), "
                "which are never compressed: raise the budget or shorten the question"
            )
        target = min(target, budget - fixed_tokens)
    return target


def assemble(chunks: Sequence[Chunk], pieces: Sequence[Piece]) -> tuple[str, list[KeptSpan]]:
    """Join kept pieces in document order into the compressed text, recording each slice's origin.

    Pieces separated in the source only by whitespace become one slice (the
    whitespace kept), so the text reads naturally and the spans stay few.
    """
    ordered = sorted(set(pieces), key=lambda p: (p.chunk, p.start))
    parts: list[str] = []
    spans: list[KeptSpan] = []
    offset = 0
    prev: Piece | None = None
    for piece in ordered:
        chunk = chunks[piece.chunk]
        if prev is not None and prev.chunk == piece.chunk and piece.start <= prev.end:
            if piece.end <= prev.end:
                continue  # contained in what is already kept
            piece = Piece(piece.chunk, prev.end, piece.end)
        source = chunk.text
        if prev is not None and prev.chunk == piece.chunk and not source[prev.end - chunk.start : piece.start - chunk.start].strip():
            # Contiguous but for whitespace: extend the last slice over the gap.
            addition = source[prev.end - chunk.start : piece.end - chunk.start]
            last = spans[-1]
            spans[-1] = last.model_copy(update={"end": piece.end})
            parts.append(addition)
            offset += len(addition)
            prev = Piece(piece.chunk, spans[-1].start, piece.end)
            continue
        if prev is not None:
            separator = GAP if prev.chunk == piece.chunk else CHUNK_BREAK
            parts.append(separator)
            offset += len(separator)
        text = source[piece.start - chunk.start : piece.end - chunk.start]
        spans.append(KeptSpan(doc_id=chunk.doc_id, start=piece.start, end=piece.end, offset=offset))
        parts.append(text)
        offset += len(text)
        prev = piece
    return "".join(parts), spans


def whole_chunks(chunks: Sequence[Chunk]) -> list[Piece]:
    return [Piece(i, c.start, c.end) for i, c in enumerate(chunks)]


def build(
    method: str,
    chunks: Sequence[Chunk],
    question: str,
    pieces: Sequence[Piece],
    count_tokens: "CountTokens",
    original_tokens: int,
    details: dict[str, float | int | str] | None = None,
) -> Compressed:
    text, spans = assemble(chunks, pieces)
    n = count_tokens(text) if text else 0
    return Compressed(
        text=text,
        method=method,
        question=question,
        ratio=round(n / max(1, original_tokens), 4),
        original_tokens=original_tokens,
        compressed_tokens=n,
        spans=spans,
        details=details or {},
    )


class CountTokens(Protocol):
    def __call__(self, text: str) -> int: ...


def chunk_tokens(chunks: Sequence[Chunk], count_tokens: CountTokens) -> list[int]:
    """Token counts of the chunks, trusting `n_tokens` where chunking already counted."""
    return [c.n_tokens if c.n_tokens else count_tokens(c.text) for c in chunks]


def original_context_tokens(chunks: Sequence[Chunk], count_tokens: CountTokens) -> int:
    """Tokens of the context as a whole: the chunks joined the way `assemble` joins them."""
    text, _ = assemble(chunks, whole_chunks(chunks))
    return count_tokens(text)


def plan_compression(
    chunks: Sequence[Chunk],
    question: str,
    count_tokens: CountTokens,
    budget: int | None,
    ratio: float | None,
    instruction: str = "",
) -> tuple[int, int]:
    """(original context tokens, target context tokens) after checking the inputs: the
    first step every compressor takes, so each checks and counts the same way."""
    check_inputs(chunks, question)
    original = original_context_tokens(chunks, count_tokens)
    fixed = count_tokens(question) + (count_tokens(instruction) if instruction else 0)
    return original, context_target(original, fixed, budget, ratio)
