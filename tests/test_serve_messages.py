"""The document/question convention of `ctxagent serve` (pure text handling, no model)."""

from __future__ import annotations

import pytest

from ctxagent.errors import InputError
from ctxagent.server.messages import split_messages

DOC = "The ferry leaves at seven. The harbour closes at nine."


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_documents_field_wins_and_keeps_ids():
    split = split_messages([user("When does the ferry leave?")], [DOC, {"id": "tides", "text": "High tide at noon."}])
    assert [d.id for d in split.documents] == ["document-1", "tides"] and split.question == "When does the ferry leave?"


def test_document_blocks_with_ids_anywhere():
    split = split_messages([user(f'<document id="port">{DOC}</document>\n<document>Other.</document>\nWhen does the ferry leave?')])
    assert [(d.id, d.text) for d in split.documents] == [("port", DOC), ("document-2", "Other.")]
    assert split.question == "When does the ferry leave?" and split.rule == "<document> blocks"


def test_question_line_separates_document_and_question():
    split = split_messages([user(f"{DOC}\n\nQuestion: when does the harbour close\nthis evening?")])
    assert split.documents[0].text == DOC and split.question == "when does the harbour close\nthis evening?"


def test_system_and_earlier_messages_are_the_document():
    messages = [{"role": "system", "content": DOC}, user("Part two: the bus leaves at ten."), {"role": "assistant", "content": "ok"}, user("When does the bus leave?")]
    split = split_messages(messages)
    assert split.documents[0].text == DOC + "\n\nPart two: the bus leaves at ten." and split.question == "When does the bus leave?"


def test_fallback_takes_the_last_question():
    assert split_messages([user(f"{DOC}\nWhen does the ferry leave?")]).question == "When does the ferry leave?"
    split = split_messages([user(f"{DOC} So when does the ferry leave? Answer briefly")])
    assert split.question == "So when does the ferry leave?" and "Answer briefly" in split.documents[0].text


@pytest.mark.parametrize(
    "messages, why",
    [
        ([{"role": "system", "content": DOC}], "no user message"),
        ([user("When does the ferry leave?")], "no document text"),
        ([{"role": "system", "content": DOC}, user("   ")], "question is empty"),
        ([user("<document id='a'>x</document><document id='a'>y</document>Q?")], "share the id"),
    ],
)
def test_unusable_requests_say_what_is_missing(messages, why):
    with pytest.raises(InputError, match=why):
        split_messages(messages)
