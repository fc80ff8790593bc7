"""`self_information`: Selective-Context-style pruning by self-information.

The model reads each chunk once, with no question (the method is question-blind
by design, so its cost can be paid once per document); a token's
self-information is -log p(token | what precedes it). Units (phrases, split at
punctuation inside sentences, or whole sentences) are ranked by their mean
self-information, and the least informative are dropped until the target is met:
what the model could have guessed adds little for a reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ctxagent.compressors.base import (
    ModelScored,
    plan_compression,
    Compressed,
    Piece,
    Scorer,
    build,
    whole_chunks,
)
from ctxagent.compressors.units import assign_tokens, sentences_of
from ctxagent.errors import InputError
from ctxagent.types import Chunk

# A phrase ends after , ; : or a dash followed by space (inside a sentence).
_PHRASE_END = re.compile(r"(?<=[,;:])\s+|\s+(?=[-–—]\s)")


@dataclass
class _Unit:
    chunk: int
    start: int
    end: int
    tokens: int
    information: float  # mean self-information per token, in nats


class SelfInformationCompressor(ModelScored):
    """Selective Context: drop the units the model finds least surprising.

    unit: "phrase" (clauses between punctuation) or "sentence".
    """

    name = "self_information"

    def __init__(self, scorer: Scorer | None = None, *, unit: str = "phrase") -> None:
        if unit not in ("phrase", "sentence"):
            raise InputError(f"unit must be 'phrase' or 'sentence', got {unit!r}")
        self._scorer = scorer
        self.unit = unit

    def compress(
        self,
        chunks: Sequence[Chunk],
        question: str,
        budget: int | None = None,
        *,
        ratio: float | None = None,
        instruction: str = "",
    ) -> Compressed:
        count = self.scorer.count_tokens
        original, target = plan_compression(chunks, question, count, budget, ratio, instruction)
        if target >= original:
            return build(self.name, chunks, question, whole_chunks(chunks), count, original)
        units = self._units(chunks)
        keep: list[_Unit] = []
        held = 0
        for unit in sorted(units, key=lambda u: -u.information):
            if held + unit.tokens > target:
                continue  # a smaller, less informative unit may still fit
            keep.append(unit)
            held += unit.tokens
        pieces = [Piece(u.chunk, u.start, u.end) for u in keep]
        result = build(self.name, chunks, question, pieces, count, original, {"units": len(units), "kept": len(keep), "unit": self.unit})
        while result.compressed_tokens > target and len(keep) > 1:  # joins cost a few tokens more than the sum
            keep.remove(min(keep, key=lambda u: u.information))
            pieces = [Piece(u.chunk, u.start, u.end) for u in keep]
            result = build(self.name, chunks, question, pieces, count, original, {"units": len(units), "kept": len(keep), "unit": self.unit})
        return result

    def _units(self, chunks: Sequence[Chunk]) -> list[_Unit]:
        scores = self.scorer.score([c.text for c in chunks])
        units: list[_Unit] = []
        for i, (chunk, s) in enumerate(zip(chunks, scores)):
            spans: list[tuple[int, int]] = []
            for sentence in sentences_of([chunk]):
                lo, hi = sentence.start - chunk.start, sentence.end - chunk.start
                if self.unit == "sentence":
                    spans.append((lo, hi))
                    continue
                cursor = lo
                for m in _PHRASE_END.finditer(chunk.text, lo, hi):
                    if m.start() > cursor:
                        spans.append((cursor, m.start()))
                    cursor = m.end()
                if hi > cursor:
                    spans.append((cursor, hi))
            for (lo, hi), (n, logprob) in zip(spans, assign_tokens(s, spans)):
                units.append(_Unit(i, chunk.start + lo, chunk.start + hi, n, -logprob / n))
        return units
