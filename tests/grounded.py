"""Shared by the grounding tests: verified facts cut from a document, and the end-to-end assertion
that an answer asserts no number, date or name its citations do not support."""

from __future__ import annotations

from ctxagent.citations import citation_for
from ctxagent.grounding import check_answer
from ctxagent.recipes.reading import NOT_FOUND, Fact, Facts
from ctxagent.types import Answer, Document


def facts_of(doc: Document, *quotes: str) -> Facts:
    """Facts for `quotes` (each cut verbatim from `doc`), ranked in the order given."""
    facts = Facts()
    for rank, quote in enumerate(quotes):
        start = doc.text.index(quote)
        facts.add([Fact(citation=citation_for(doc, start, start + len(quote)), relevance=1.0 - 0.1 * rank)])
    return facts


def assert_grounded(answer: Answer, question: str) -> None:
    if answer.text in ("", NOT_FOUND):
        assert not answer.citations or answer.partial, "NOT FOUND cites nothing"
        return
    grounding = check_answer(answer.text, [c.quote for c in answer.citations], question)
    assert grounding.supported, f"{answer.text!r} asserts {grounding.unsupported}, absent from its citations {[c.quote for c in answer.citations]}"
