"""Where the document ends and the question begins, in an OpenAI chat request.

OpenAI clients send only messages, so the long document travels inside them. The
convention, first match wins (docs/serve.md has examples):

1. `documents` in the request body (`extra_body={"documents": [...]}` with the `openai`
   client): each a string or `{"id", "text", "metadata"?}` (a loaded Document's dump, so a
   PDF's page starts give citations their pages); the last user message is the question.
2. `<document>...</document>` blocks (optionally `<document id="name">`) in any message:
   each block is a document; the last user message without its blocks is the question.
3. A line starting with `Question:` in the last user message: what follows is the
   question, what precedes it is document text.
4. System messages and earlier user messages hold the document; the last user message is
   the question.
5. Fallback, the last user message alone: its last line, if that line asks something
   (ends with "?"), else its last sentence ending with "?", else its last line, is the
   question; the rest is the document.

Assistant messages are ignored. Nothing here logs or keeps the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ctxagent.agent import check_documents
from ctxagent.errors import InputError
from ctxagent.types import Document

_BLOCK = re.compile(r"<document(?:\s+id\s*=\s*[\"']([^\"']*)[\"'])?\s*>(.*?)</document>", re.DOTALL | re.IGNORECASE)
_MARKER = re.compile(r"^[ \t]*question[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
_ASKED = re.compile(r"[^.!?\n]*\?")


@dataclass
class Split:
    documents: list[Document]
    question: str
    rule: str  # which rule of the convention matched, for the response's notes


def split_messages(messages: Sequence[dict[str, Any]], documents: Sequence[Any] | None = None) -> Split:
    """Documents and question from chat messages (`{"role", "content"}` with string content)."""
    texts = [(m["role"], m["content"]) for m in messages if m["role"] in ("system", "user", "developer")]
    last_user = next((i for i in range(len(texts) - 1, -1, -1) if texts[i][0] == "user"), None)
    if last_user is None:
        raise InputError("the request has no user message: put the question (and the document, or a part of it) in a user message")
    question_text = texts[last_user][1]
    if documents:
        return Split(_given(documents), _question(question_text), "documents field")
    blocks = [(m.group(1), m.group(2)) for _, text in texts for m in _BLOCK.finditer(text)]
    if blocks:
        docs = [Document(id=name or _name(i, len(blocks)), text=body.strip()) for i, (name, body) in enumerate(blocks)]
        return Split(check_documents(docs), _question(_BLOCK.sub("", question_text)), "<document> blocks")
    before = "\n\n".join(text for _, text in texts[:last_user] if text.strip())
    markers = list(_MARKER.finditer(question_text))
    if markers:
        cut = markers[-1]
        body = "\n\n".join(t for t in (before, question_text[: cut.start()].strip()) if t)
        return Split(_one(body), _question(question_text[cut.end() :]), "Question: line")
    if before:
        return Split(_one(before), _question(question_text), "earlier messages")
    body, question = _fallback(question_text)
    return Split(_one(body), _question(question), "fallback: last question in the message")


def _fallback(text: str) -> tuple[str, str]:
    lines = text.rstrip().splitlines()
    last = lines[-1].strip() if lines else ""
    if last.endswith("?"):
        return "\n".join(lines[:-1]), last
    asked = list(_ASKED.finditer(text))
    if asked:
        hit = asked[-1]
        return (text[: hit.start()] + text[hit.end() :]).strip(), hit.group().strip()
    return "\n".join(lines[:-1]), last


def _given(items: Sequence[Any]) -> list[Document]:
    docs = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            docs.append(Document(id=_name(i, len(items)), text=item))
        elif isinstance(item, dict) and isinstance(item.get("text"), str) and isinstance(item.get("metadata", {}), dict):
            # metadata as the loaders write it (a PDF's "page_starts"), so citations get page numbers as in the SDK
            docs.append(Document(id=str(item.get("id") or _name(i, len(items))), text=item["text"], metadata=item.get("metadata") or {}))
        else:
            raise InputError(f"documents[{i}] must be a string or an object with 'text' (and optionally 'id' and 'metadata')")
    return check_documents(docs)


def _name(i: int, n: int) -> str:
    return "document" if n == 1 else f"document-{i + 1}"


def _one(text: str) -> list[Document]:
    if not text.strip():
        raise InputError(
            "no document text found in the messages: send it in a system message, in <document>...</document>, "
            "before a 'Question:' line, or in the `documents` field"
        )
    return [Document(id="document", text=text)]




def _question(text: str) -> str:
    text = text.strip()
    if not text:
        raise InputError("the question is empty: end the last user message with the question")
    return text
