"""One assertion shared by the end-to-end tests: an answer asserts no number, date or name its citations do not support."""

from __future__ import annotations

from ctxagent.grounding import check_answer
from ctxagent.recipes.reading import NOT_FOUND
from ctxagent.types import Answer


def assert_grounded(answer: Answer, question: str) -> None:
    if answer.text in ("", NOT_FOUND):
        assert not answer.citations or answer.partial, "NOT FOUND cites nothing"
        return
    grounding = check_answer(answer.text, [c.quote for c in answer.citations], question)
    assert grounding.supported, f"{answer.text!r} asserts {grounding.unsupported}, absent from its citations {[c.quote for c in answer.citations]}"
