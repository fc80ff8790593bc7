"""Prompt wording shared by recipes, kept in one place so it can be tuned once.

Small local models follow short, literal instructions best; keep these plain.
"""

from __future__ import annotations

from ctxagent.engines.base import Message

ANSWER_SYSTEM = "You answer questions about a document. Use only facts stated in the document. Answer in one short sentence."


def answer_prompt(context: str, question: str) -> list[Message]:
    return [
        Message("system", ANSWER_SYSTEM),
        Message("user", f"Document:\n{context}\n\nQuestion: {question}"),
    ]


def document_block(doc_id: str, text: str, many: bool) -> str:
    """A document's text, labelled with its id only when several documents share a prompt."""
    return f"[{doc_id}]\n{text}" if many else text
