"""PDF page numbers for citations: a user handed "report.pdf:18312-18420" wants the page.

The PDF loader records where each page starts in the extracted text
(`metadata["page_starts"]`); a citation's page is the last page starting at or
before the quote.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

from ctxagent.types import Answer, Document


def page_of(document: Document, offset: int) -> int | None:
    """1-based page holding character `offset` of a PDF's text; None for documents without pages."""
    starts = document.metadata.get("page_starts")
    if not starts:
        return None
    return max(1, bisect_right(starts, offset))


def annotate_pages(answer: Answer, documents: Sequence[Document]) -> Answer:
    """Set `citation.page` on every citation into a paged document (in place; returns the answer)."""
    by_id = {d.id: d for d in documents}
    for citation in answer.citations:
        document = by_id.get(citation.doc_id)
        if document is not None:
            citation.page = page_of(document, citation.start)
    return answer
