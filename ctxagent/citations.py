"""Citations that are true by construction: every quote is a slice of its source.

Two ways in. `find_quote` locates a quote the model produced (exactly, or up to
case and whitespace) and returns the source's own span, so a paraphrase never
becomes a citation. `ground_answer` picks the source sentences that best support
an answer by word overlap, for recipes whose model does not quote.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

from ctxagent.chunking import sentence_spans
from ctxagent.types import Citation, Document

_WORD = re.compile(r"[A-Za-z0-9]+(?:[.,'-][A-Za-z0-9]+)*")
# Words too common to say anything about support; short on purpose.
_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its of on or that the their there "
    "this to was were what when where which who whom why will with you your answer question document text".split()
)


def content_words(text: str) -> list[str]:
    return [w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOPWORDS]


def find_quote(quote: str, text: str, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """Span of `quote` in text[start:end]: exact first, then ignoring case and runs of whitespace."""
    end = len(text) if end is None else end
    quote = quote.strip().strip('"“”\'')
    if not quote:
        return None
    at = text.find(quote, start, end)
    if at >= 0:
        return at, at + len(quote)
    pattern = r"\s+".join(re.escape(part) for part in quote.split())
    match = re.compile(pattern, re.IGNORECASE).search(text, start, end)
    return (match.start(), match.end()) if match else None


def citation_for(doc: Document, start: int, end: int) -> Citation:
    return Citation(doc_id=doc.id, start=start, end=end, quote=doc.text[start:end])


def ground_answer(
    answer: str,
    question: str,
    documents: Sequence[Document],
    regions: Iterable[tuple[str, int, int]] | None = None,
    max_citations: int = 2,
) -> list[Citation]:
    """The source sentences that best support `answer`, searched within `regions`.

    regions: (doc_id, start, end) spans the model actually read; all of every
    document when None. A sentence qualifies only if it shares a content word
    with the answer that the question does not already contain, so a sentence
    that merely echoes the question is never cited as support.
    """
    answer_words = Counter(content_words(answer))
    question_words = set(content_words(question))
    novel = {w for w in answer_words if w not in question_words}
    if not novel:
        return []
    by_id = {d.id: d for d in documents}
    if regions is None:
        regions = [(d.id, 0, len(d.text)) for d in documents]
    scored: list[tuple[float, str, int, int]] = []
    for doc_id, start, end in regions:
        text = by_id[doc_id].text
        for span in sentence_spans(text, start, end):
            words = set(content_words(text[span.start : span.end]))
            hits = novel & words
            if not hits:
                continue
            # Numbers and names carry an answer; a number shared with the answer counts double.
            weight = sum(2.0 if any(ch.isdigit() for ch in w) else 1.0 for w in hits)
            total = sum(2.0 if any(ch.isdigit() for ch in w) else 1.0 for w in novel)
            score = 2.0 * weight / total + 0.5 * len(question_words & words) / max(1, len(question_words))
            scored.append((score, doc_id, span.start, span.end))
    scored.sort(key=lambda s: (-s[0], s[2]))
    best = scored[0][0] if scored else 0.0
    return [citation_for(by_id[d], s, e) for score, d, s, e in scored[:max_citations] if score >= 0.75 * best]


def verify_citations(citations: Sequence[Citation], documents: Sequence[Document]) -> list[Citation]:
    """The citations whose quote is not exactly its document's text at its offsets (empty = all good)."""
    by_id = {d.id: d for d in documents}
    return [c for c in citations if c.doc_id not in by_id or by_id[c.doc_id].text[c.start : c.end] != c.quote]
