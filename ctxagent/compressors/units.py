"""Sentences and words of chunks with source offsets, and per-word scores from token scores.

Compressors decide at the level of chunks, sentences and words, while a model
scores tokens; these helpers carry scores from tokens to words (by character
offsets) and keep every unit's place in the source document.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Sequence

from ctxagent.chunking import sentence_spans
from ctxagent.engines.base import TokenScores
from ctxagent.types import Chunk

_WORD = re.compile(r"\S+")


@dataclass
class Word:
    start: int  # source offsets
    end: int
    tokens: int = 1
    logprob: float = 0.0  # summed over the word's tokens: what decides whether it is dropped
    plain: float = 0.0  # summed log-prob read without the question
    has_digit: bool = False


@dataclass
class Sentence:
    chunk: int  # position of its chunk in the input
    start: int  # source offsets
    end: int
    words: list[Word] = field(default_factory=list)
    relevance: float = 0.0  # 0..1, higher = more about the question; protects its words

    @property
    def tokens(self) -> int:
        return sum(w.tokens for w in self.words)


def sentences_of(chunks: Sequence[Chunk], with_words: bool = False) -> list[Sentence]:
    """Every sentence of every chunk, in order, with source offsets (and its words if asked)."""
    out: list[Sentence] = []
    for i, chunk in enumerate(chunks):
        for span in sentence_spans(chunk.text):
            sentence = Sentence(i, chunk.start + span.start, chunk.start + span.end)
            if with_words:
                piece = chunk.text[span.start : span.end]
                sentence.words = [
                    Word(sentence.start + m.start(), sentence.start + m.end(), has_digit=any(ch.isdigit() for ch in m.group()))
                    for m in _WORD.finditer(piece)
                ]
            out.append(sentence)
    return out


def assign_tokens(scores: TokenScores, words: Sequence[tuple[int, int]]) -> list[tuple[int, float]]:
    """(token count, summed log-prob) per word, words given as (start, end) within `scores.text`.

    A token belongs to the word holding its last non-space character, so a
    leading space (" world") counts with the word after it. Tokens that are only
    whitespace belong to no word.
    """
    starts = [w[0] for w in words]
    result = [[0, 0.0] for _ in words]
    text = scores.text
    for (t_start, t_end), logprob in zip(scores.offsets, scores.logprobs):
        last = t_end - 1
        while last >= t_start and last < len(text) and text[last].isspace():
            last -= 1
        if last < t_start:
            continue
        k = bisect.bisect_right(starts, last) - 1
        if k >= 0 and words[k][0] <= last < words[k][1]:
            result[k][0] += 1
            result[k][1] += logprob
    return [(max(1, n), lp) for n, lp in result]


def mean(values: Sequence[float], default: float = 0.0) -> float:
    return sum(values) / len(values) if values else default
