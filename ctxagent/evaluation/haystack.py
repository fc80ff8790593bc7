"""Real filler text ("haystack") measured in the engine's own tokens.

The bundled haystacks are excerpts of three public-domain Jane Austen novels
(see data/SOURCE.md). Needles go between paragraphs, so the text around them
stays natural prose; the token length of a haystack is counted with the
tokenizer of the engine under test, so "a 4096-token task" means 4096 tokens
to that model.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Sequence

from ctxagent.errors import InputError

CountTokens = Callable[[str], int]

HAYSTACKS = ("pride_and_prejudice", "emma", "persuasion")
SEPARATOR = "\n\n"
# A sentence ends at . ! or ? (perhaps closing a quote) followed by space and a capital or quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:[\"'_)]?)\s+(?=[A-Z\"'_(])")


def sentences(paragraph: str) -> list[str]:
    """Split a paragraph at sentence ends (long sentences also at clause ends).

    Joining the pieces with one space gives the paragraph back, modulo runs of spaces.
    """
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        pieces.append(paragraph[start : match.start() + len(match.group(0).rstrip())].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    merged: list[str] = []
    for piece in pieces:
        if merged and merged[-1].endswith(_ABBREVIATIONS):  # "Mrs. Long" is one sentence
            merged[-1] += " " + piece
        elif piece:
            merged.append(piece)
    return [part for piece in merged for part in _split_long(piece)]


# Austen's sentences run to 1,200 characters; past this many, a needle may go at a clause bound
# (after "; " or else ", ") so that depths are placed finely even in short documents.
LONG_SENTENCE = 240


def _split_long(sentence: str, marks: tuple[str, ...] = ("; ", ", ")) -> list[str]:
    if len(sentence) <= LONG_SENTENCE or not marks:
        return [sentence]
    parts = sentence.split(marks[0])
    if len(parts) == 1:
        return _split_long(sentence, marks[1:])
    pieces = [p + marks[0].rstrip() for p in parts[:-1]] + [parts[-1]]
    # Re-group small neighbours so pieces stay near the limit rather than a few words each.
    grouped: list[str] = []
    for piece in pieces:
        if grouped and len(grouped[-1]) + len(piece) < LONG_SENTENCE:
            grouped[-1] += " " + piece
        else:
            grouped.append(piece)
    return [q for g in grouped for q in _split_long(g, marks[1:])]


_ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Col.", "Capt.", "Esq.")


def data_path(name: str):
    return resources.files("ctxagent.evaluation").joinpath("data", name)


@lru_cache(maxsize=None)
def haystack_text(name: str) -> str:
    """The text of a bundled haystack by name (see HAYSTACKS)."""
    if name not in HAYSTACKS:
        raise InputError(f"no bundled haystack named {name!r}; known: {', '.join(HAYSTACKS)}")
    return data_path(f"{name}.txt").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def qa_pairs() -> tuple[dict, ...]:
    """Hand-written question/answer pairs, each with a verbatim evidence passage from a haystack."""
    lines = data_path("qa.jsonl").read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


@dataclass
class Paragraphs:
    """A haystack split into paragraphs of sentences, each sentence with its token count (counted once)."""

    name: str
    texts: list[list[str]]
    tokens: list[list[int]]


_measured: dict[tuple[str, int], Paragraphs] = {}


def paragraphs(name: str, count_tokens: CountTokens) -> Paragraphs:
    key = (name, id(count_tokens))
    if key not in _measured:
        texts = [sentences(p) for p in haystack_text(name).split(SEPARATOR) if p.strip()]
        _measured[key] = Paragraphs(name, texts, [[count_tokens(x) for x in p] for p in texts])
    return _measured[key]


def filler(
    count_tokens: CountTokens,
    n_tokens: int,
    rng: random.Random,
    sources: Sequence[str] = HAYSTACKS,
) -> tuple[list[list[str]], list[list[int]], str]:
    """Consecutive sentences of one source, from a random paragraph on, totalling at most about `n_tokens`.

    Returns (paragraphs as lists of sentences, their token counts, source name).
    Wraps around to the start of the excerpt when it runs out (an excerpt is
    about 25K tokens, so only very long tasks wrap). Joins cost about a token
    each; the caller measures the assembled text and corrects.
    """
    source = rng.choice(list(sources))
    paras = paragraphs(source, count_tokens)
    start = rng.randrange(len(paras.texts))
    out: list[list[str]] = []
    counts: list[list[int]] = []
    total, misses, i = 0, 0, start
    # A sentence that would overshoot is skipped (a long one can be hundreds of tokens); stop once
    # the room left is a few tokens or a run of sentences has not fitted.
    while n_tokens - total > 4 and misses < 40:
        if i - start > 10 * len(paras.texts):  # pragma: no cover - guards a zero-token tokenizer
            raise InputError(f"could not fill {n_tokens} tokens from {source}")
        kept_t: list[str] = []
        kept_n: list[int] = []
        for text, n in zip(paras.texts[i % len(paras.texts)], paras.tokens[i % len(paras.texts)]):
            if total + n + 1 > n_tokens:
                misses += 1
                continue
            kept_t.append(text)
            kept_n.append(n)
            total += n + 1
        if kept_t:
            out.append(kept_t)
            counts.append(kept_n)
        i += 1
    return out, counts, source
