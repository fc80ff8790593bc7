"""Real text with one planted fact, for end-to-end tests that need a document longer than
the window (the needle paragraph at a fixed depth of an Austen novel)."""

from __future__ import annotations

from typing import Callable

from ctxagent.evaluation.haystack import haystack_text


def text_with_fact(fact: str, count_tokens: Callable[[str], int], tokens: float, depth: float = 0.6, book: str = "persuasion") -> str:
    """Whole paragraphs of `book` until they pass `tokens` tokens, `fact` inserted as its own
    paragraph at `depth`."""
    paragraphs, total = [], 0
    for paragraph in haystack_text(book).split("\n\n"):
        paragraphs.append(paragraph)
        total += count_tokens(paragraph) + 1
        if total > tokens:
            break
    paragraphs.insert(int(depth * len(paragraphs)), fact)
    return "\n\n".join(paragraphs)
