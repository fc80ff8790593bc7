"""Token-aware chunking on paragraph and sentence bounds, keeping exact offsets.

Every chunk satisfies `document.text[chunk.start:chunk.end] == chunk.text`; that
invariant is what lets every later step (compression, retrieval, quoting) cite
the original document exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ctxagent.errors import InputError
from ctxagent.types import Chunk, Document

TokenCounter = Callable[[str], int]

# Documents at least this long show a progress bar (stderr) while chunked, and their chunk
# spans are cached on disk by content hash, so the next question on the same file skips this.
LARGE_DOCUMENT_CHARS = 200_000
# Above this, token counts of a whole document are estimated from evenly spread samples.
ESTIMATE_ABOVE_CHARS = 200_000
_SAMPLES, _SAMPLE_CHARS = 16, 4_000
# Texts whose token counts tell tokenizers apart (with the counter's model name, the cache key).
_FINGERPRINT_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "1234567890 3.14159 2026-11-30 $4,200.00",
    "naïve café Zürich — «quotes» 東京 émigré",
    "def f(x):\n    return x ** 2  # code",
    "   spaces\tand\ttabs\n\nnew paragraph",
)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Words whose full stop ends no sentence: a title before its name. A closed list, so that
# "Yes." or "It." still ends one; a lone capital (an initial: "Ulysses S. Grant") ends none either.
TITLES = ("Mr", "Mrs", "Ms", "Dr", "St", "Sr", "Jr", "Mt", "Ft", "Col", "Gen", "Capt", "Cpt", "Lt", "Sgt", "Prof", "Rev", "Hon", "Gov", "Sen", "Rep", "Pres")
# A sentence ends at . ! ? (optionally followed by quotes/brackets) and then whitespace, but not
# after a title or an initial ("Gen. U. S. Grant keeps 14 horses." is one sentence: evidence is
# cut at these ends, so a cut there would quote half a sentence).
_SENTENCE_END = re.compile("(?<=[.!?])" + "".join(rf"(?<!\b{t}\.)" for t in (*TITLES, "[A-Z]")) + r"[\"')\]]*(\s+)")  # closing quotes stay with their sentence
# Bumped when sentence bounds change, so chunk spans cached by an older release are not reused.
_SPLIT_VERSION = 2


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def _split(text: str, start: int, end: int, pattern: re.Pattern[str]) -> Iterator[Span]:
    """Spans of text[start:end] between matches of `pattern` (of its group 1 where it has one:
    the rest of the match stays with the span before), stripped of surrounding whitespace."""
    cursor = start
    for match in pattern.finditer(text, start, end):
        cut = match.span(1) if pattern.groups else match.span()
        yield from _stripped(text, cursor, cut[0])
        cursor = cut[1]
    yield from _stripped(text, cursor, end)


def _stripped(text: str, start: int, end: int) -> Iterator[Span]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield Span(start, end)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans within text[start:end], never crossing a paragraph break."""
    end = len(text) if end is None else end
    return [s for para in _split(text, start, end, _PARAGRAPH_BREAK) for s in _split(text, para.start, para.end, _SENTENCE_END)]


def _word_pieces(text: str, span: Span, max_tokens: int, count: TokenCounter) -> Iterator[tuple[Span, int]]:
    """Split a sentence longer than max_tokens at word bounds (at character bounds for one giant word)."""
    words = [m.span() for m in re.finditer(r"\S+", text[span.start : span.end])]
    piece_start, piece_end = span.start + words[0][0], span.start + words[0][0]
    for w_start, w_end in words:
        w_start, w_end = span.start + w_start, span.start + w_end
        candidate = count(text[piece_start:w_end])
        if candidate > max_tokens and piece_end > piece_start:
            yield Span(piece_start, piece_end), count(text[piece_start:piece_end])
            piece_start = w_start
        piece_end = w_end
        while count(text[piece_start:piece_end]) > max_tokens:  # one word longer than a chunk
            cut = piece_start + max(1, (piece_end - piece_start) // 2)
            while cut > piece_start + 1 and count(text[piece_start:cut]) > max_tokens:
                cut = piece_start + (cut - piece_start) // 2
            yield Span(piece_start, cut), count(text[piece_start:cut])
            piece_start = cut
    if piece_end > piece_start:
        yield Span(piece_start, piece_end), count(text[piece_start:piece_end])


def estimate_tokens(text: str, count_tokens: TokenCounter) -> int:
    """Tokens in `text`: counted exactly when short, else scaled up from evenly spread samples
    (16 x 4,000 characters), so planning over a 2 MB file costs milliseconds, not seconds."""
    if len(text) <= ESTIMATE_ABOVE_CHARS:
        return count_tokens(text)
    step = len(text) // _SAMPLES
    sampled = [text[i * step : i * step + _SAMPLE_CHARS] for i in range(_SAMPLES)]
    return round(sum(count_tokens(t) for t in sampled) * len(text) / sum(len(t) for t in sampled))


def counter_fingerprint(count_tokens: TokenCounter) -> str:
    """Which tokenizer a counter is: its owner's model name and its counts of a few probe texts."""
    owner: Any = getattr(count_tokens, "__self__", None)
    owner = getattr(owner, "engine", owner)  # RunContext.count_tokens -> the engine behind it
    name = getattr(owner, "model_name", None) or getattr(count_tokens, "__qualname__", type(count_tokens).__name__)
    return f"{name}:{','.join(str(count_tokens(t)) for t in _FINGERPRINT_TEXTS)}"


def _cache_path(document: Document, count_tokens: TokenCounter, max_tokens: int, overlap_sentences: int, end: int) -> Any:
    from ctxagent.cache import cache_dir

    key = f"{document.content_hash}|{counter_fingerprint(count_tokens)}|{max_tokens}|{overlap_sentences}|{end}|v{_SPLIT_VERSION}"
    return cache_dir("chunks") / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _cached_chunks(path: Any, document: Document, end: int) -> list[Chunk] | None:
    try:
        spans = json.loads(path.read_text())
        if not all(0 <= s < e <= end for s, e, _ in spans):
            return None
        return [Chunk(doc_id=document.id, index=i, start=s, end=e, text=document.text[s:e], n_tokens=n) for i, (s, e, n) in enumerate(spans)]
    except (OSError, ValueError, TypeError):
        return None


def chunk_document(
    document: Document,
    count_tokens: TokenCounter,
    max_tokens: int = 512,
    overlap_sentences: int = 0,
    limit_chars: int | None = None,
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most `max_tokens` tokens.

    Sentences stay together within a paragraph when they fit; a paragraph break is
    preferred as a chunk edge. `overlap_sentences` repeats the last sentences of a
    chunk at the start of the next, for recipes that read chunks in isolation.
    `limit_chars` chunks only the first characters of a huge document.
    A large document (LARGE_DOCUMENT_CHARS) shows a progress bar on stderr and its chunk
    spans are cached by content hash, tokenizer and size, so it is chunked once.
    """
    if max_tokens < 1:
        raise InputError(f"max_tokens must be positive, got {max_tokens}")
    end = len(document.text) if limit_chars is None else min(len(document.text), limit_chars)
    if end < LARGE_DOCUMENT_CHARS:
        return _chunk(document, count_tokens, max_tokens, overlap_sentences, end)
    path = _cache_path(document, count_tokens, max_tokens, overlap_sentences, end)
    cached = _cached_chunks(path, document, end)
    if cached is not None:
        return cached
    chunks = _chunk(document, count_tokens, max_tokens, overlap_sentences, end)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps([[c.start, c.end, c.n_tokens] for c in chunks]))
    partial.replace(path)
    return chunks


def _chunk(document: Document, count_tokens: TokenCounter, max_tokens: int, overlap_sentences: int, end: int) -> list[Chunk]:
    from tqdm import tqdm

    text = document.text
    pieces: list[tuple[Span, int, bool]] = []  # (span, tokens, starts_paragraph)
    progress = tqdm(total=end, desc=f"chunking {document.id}", unit="char", unit_scale=True, file=sys.stderr, disable=end < LARGE_DOCUMENT_CHARS, leave=False)
    for para in _split(text, 0, end, _PARAGRAPH_BREAK):
        progress.update(para.end - progress.n)
        first = True
        for sentence in _split(text, para.start, para.end, _SENTENCE_END):
            n = count_tokens(text[sentence.start : sentence.end])
            parts = [(sentence, n)] if n <= max_tokens else list(_word_pieces(text, sentence, max_tokens, count_tokens))
            for span, tokens in parts:
                pieces.append((span, tokens, first))
                first = False
    chunks: list[Chunk] = []
    group: list[tuple[Span, int, bool]] = []

    def flush(group: list[tuple[Span, int, bool]]) -> list[tuple[Span, int, bool]]:
        """Emit the group as a chunk; pieces that overflow once joined are handed back."""
        spill: list[tuple[Span, int, bool]] = []
        while True:
            chunk_text = text[group[0][0].start : group[-1][0].end]
            n = count_tokens(chunk_text)
            if n <= max_tokens or len(group) == 1:
                break
            spill.insert(0, group.pop())
        start = group[0][0].start
        chunks.append(Chunk(doc_id=document.id, index=len(chunks), start=start, end=start + len(chunk_text), text=chunk_text, n_tokens=n))
        return spill

    for piece in pieces:
        # Joining whitespace costs tokens too: one per piece is the estimate, and flush() checks it.
        if group and sum(t + 1 for _, t, _ in group) + piece[1] > max_tokens:
            spill = flush(group)
            keep = group[-overlap_sentences:] if overlap_sentences and not spill else []
            group = keep + spill
            while len(group) > 1 and sum(t + 1 for _, t, _ in group) + piece[1] > max_tokens:
                if keep:
                    keep, group = keep[1:], group[1:]
                else:
                    group = flush(group)
        group.append(piece)
    while group:
        group = flush(group)
    progress.close()
    return chunks


def prefix_within(text: str, count_tokens: TokenCounter, max_tokens: int) -> int:
    """Length of the longest prefix of `text` that fits in `max_tokens`, cut at a word bound.

    Never tokenises more than a bounded window of the text, so a ten-million
    character document costs no more to truncate than a short one.
    """
    if max_tokens <= 0:
        return 0
    # No tokenizer we know of averages more than 16 characters a token on real text.
    hi = min(len(text), max_tokens * 16)
    if hi == len(text) and count_tokens(text) <= max_tokens:
        return len(text)
    lo = 0
    while lo < hi:  # largest cut with count <= max_tokens
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    space = max(text.rfind(" ", 0, lo), text.rfind("\n", 0, lo))
    return space if space > lo // 2 else lo
