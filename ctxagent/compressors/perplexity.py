"""`perplexity`: question-aware coarse-to-fine compression in the spirit of LongLLMLingua.

The model is the expensive part, so the default reads the document with it once,
in short batched pieces (never one long prompt: cost stays linear in length):

0. Sentences (cheap). A sentence encoder, several times cheaper per token than
   the scorer (a quarter of SmolLM2-135M's time on our CPU), embeds the question and every sentence. When the document holds
   more than `prefilter_margin` times the target, only the chunks whose best
   sentence is most like the question go on to the model.
1. Chunks. One batched pass scores, for every remaining chunk, "chunk + question
   probe": how likely the question becomes after reading the chunk, against the
   same probe with no chunk (contrastive conditioning: how much the chunk *raises*
   the question's likelihood). The same pass gives each chunk token's surprisal.
   The best chunks are kept, a margin above the target.
2. Sentences of kept chunks are ranked by similarity to the question, their
   chunk's rank as a prior, and kept until a margin above the target.
   With `sentences="contrastive"` a second model pass instead reads the kept
   chunks after the question and ranks sentences by how much more predictable
   the question makes their tokens (LongLLMLingua's contrastive perplexity):
   closer to the paper, and 1.4 to 2.5 times the time in benchmarks/compressors.py.
3. Words. Inside kept sentences the least informative words (lowest surprisal)
   are dropped, the most relevant sentences losing the fewest. With
   `iterations` > 1 each later round re-scores the already shortened text after
   the question (one more pass about the target's size), since what a word tells
   depends on what is left around it (LLMLingua's iterative compression).
   Numbers are kept.

The instruction and the question are never compressed; they only condition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from tqdm.auto import tqdm

from ctxagent.compressors.base import (
    ModelScored,
    plan_compression,
    Compressed,
    Piece,
    Scorer,
    build,
    chunk_tokens,
    whole_chunks,
)
from ctxagent.compressors.embedding import DEFAULT_MODEL as DEFAULT_ENCODER
from ctxagent.compressors.embedding import load_encoder, sentence_similarities
from ctxagent.compressors.units import Sentence, assign_tokens, mean, sentences_of
from ctxagent.errors import InputError
from ctxagent.types import Chunk

# Appended after each chunk: how likely is this question once the chunk is read?
PROBE = "\n\nQuestion: {question}\nThe passage above answers this question."
# Put before the kept chunks: reading them with the question in mind.
QUESTION_PREFIX = "Question: {question}\n\nRelevant passage:\n"
# Weight of a chunk's rank (1 for the best kept chunk, falling to 0) beside a
# sentence's cosine similarity to the question (typically 0 to 0.8).
SIMILARITY_PRIOR = 0.2


@dataclass
class _Ranked:
    index: int
    relevance: float  # mean log p(probe | chunk) - mean log p(probe)
    token_logprobs: list[float]  # plain log-prob of each chunk token, question unseen
    token_offsets: list[tuple[int, int]]


class PerplexityCompressor(ModelScored):
    """Question-aware coarse-to-fine compressor.

    scorer: an Engine (or anything with `score` and `count_tokens`); the embedded
        `hf` engine when None, loaded on first use.
    sentences: "embedding" (default) ranks the sentences of kept chunks with the
        sentence encoder, so the model reads the document once; "contrastive" adds
        a question-conditioned model pass over the kept chunks (LongLLMLingua's
        contrastive perplexity), for sentence and word scores.
    prefilter: "embedding" (default) lets only the chunks most like the question,
        `prefilter_margin` times the target, reach the model; None lets the model
        read every chunk. Needs the sentence encoder, as does sentences="embedding".
    chunk_margin: keep chunks until they hold this many times the target tokens (at
        most the target plus half of the rest).
    sentence_margin: keep sentences until they hold this many times the target;
        words are then dropped down to the target. 1.0 means sentence level only.
    iterations: word-dropping rounds; each round after the first re-scores the
        shortened text after the question (one more batched pass about the target's
        size). The token target is met exactly either way.
    keep_numbers: never drop a word with a digit (answers are often numbers).
    protect: how strongly a sentence's relevance shields its words (nats per token).
    encoder: the sentence-transformers model for steps 0 and 2.
    """

    name = "perplexity"

    def __init__(
        self,
        scorer: Scorer | None = None,
        *,
        sentences: str = "embedding",
        prefilter: str | None = "embedding",
        prefilter_margin: float = 2.0,
        chunk_margin: float = 1.5,
        sentence_margin: float = 1.2,
        iterations: int = 1,
        keep_numbers: bool = True,
        protect: float = 3.0,
        encoder: str = DEFAULT_ENCODER,
        progress: bool = False,
    ) -> None:
        if chunk_margin < 1 or sentence_margin < 1 or prefilter_margin < 1:
            raise InputError(
                f"chunk_margin, sentence_margin and prefilter_margin must be at least 1, got {chunk_margin}, {sentence_margin} and {prefilter_margin}"
            )
        if iterations < 1:
            raise InputError(f"iterations must be at least 1, got {iterations}")
        if sentences not in ("embedding", "contrastive"):
            raise InputError(f"sentences must be 'embedding' or 'contrastive', got {sentences!r}")
        if prefilter not in (None, "embedding"):
            raise InputError(f"prefilter must be None or 'embedding', got {prefilter!r}")
        self._scorer = scorer
        self.sentences = sentences
        self.prefilter = prefilter
        self.prefilter_margin = prefilter_margin
        self.chunk_margin = chunk_margin
        self.sentence_margin = sentence_margin
        self.iterations = iterations
        self.keep_numbers = keep_numbers
        self.protect = protect
        self.encoder = encoder
        self.progress = progress

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
            return build(self.name, chunks, question, whole_chunks(chunks), count, original, {"stage": "nothing to drop"})
        timings: dict[str, float | int | str] = {"target_tokens": target}
        sizes = chunk_tokens(chunks, count)
        similarity: dict[tuple[int, int], float] = {}
        narrow = bool(self.prefilter) and sum(sizes) > self.prefilter_margin * target
        if narrow or self.sentences == "embedding":
            began = time.perf_counter()
            similarity = self._similarities(chunks, question)
            if narrow:
                chunks, sizes, similarity = self._prefilter(chunks, sizes, similarity, target)
                timings["chunks_after_prefilter"] = len(chunks)
            timings["encoder_s"] = round(time.perf_counter() - began, 3)

        began = time.perf_counter()
        ranked = self._rank_chunks(chunks, question, instruction)
        timings["chunk_pass_s"] = round(time.perf_counter() - began, 3)
        kept_chunks: list[_Ranked] = []
        held = 0
        # A margin above the target, but never more than half of what would be dropped anyway.
        enough = min(self.chunk_margin * target, target + 0.5 * (sum(sizes) - target))
        for r in ranked:
            if held >= enough:
                break
            kept_chunks.append(r)
            held += sizes[r.index]
        timings["chunks_kept"] = len(kept_chunks)

        began = time.perf_counter()
        if self.sentences == "contrastive":
            sentences = self._score_sentences_contrastive(chunks, kept_chunks, question, instruction)
        else:
            sentences = self._score_sentences_by_similarity(chunks, kept_chunks, similarity)
        timings["sentence_pass_s"] = round(time.perf_counter() - began, 3)
        sentences = self._keep_sentences(sentences, target)
        timings["sentences_kept"] = len(sentences)

        began = time.perf_counter()
        sentences = self._drop_words(chunks, sentences, question, instruction, target)
        timings["word_rounds_s"] = round(time.perf_counter() - began, 3)
        pieces = [Piece(s.chunk, w.start, w.end) for s in sentences for w in s.words]
        result = build(self.name, chunks, question, pieces, count, original, timings)
        # The joined text may tokenise to a little more than the words' sum: trim the least informative.
        while result.compressed_tokens > target and len(pieces) > 1:
            excess = result.compressed_tokens - target
            sentences = _drop_lowest(sentences, excess, self.keep_numbers, self.protect)
            pieces = [Piece(s.chunk, w.start, w.end) for s in sentences for w in s.words]
            result = build(self.name, chunks, question, pieces, count, original, timings)
        return result

    # -- level 0: a cheap encoder reads every sentence ------------------------------------
    def _similarities(self, chunks: Sequence[Chunk], question: str) -> dict[tuple[int, int], float]:
        """Cosine similarity to the question of every sentence, keyed by (chunk position, source start)."""
        sentences, _, similarity = sentence_similarities(load_encoder(self.encoder), chunks, question)
        return {(s.chunk, s.start): float(sim) for s, sim in zip(sentences, similarity)}

    def _prefilter(
        self, chunks: Sequence[Chunk], sizes: list[int], similarity: dict[tuple[int, int], float], target: int
    ) -> tuple[list[Chunk], list[int], dict[tuple[int, int], float]]:
        """The chunks whose best sentence is most like the question, up to the margin, in document order."""
        best = [float("-inf")] * len(chunks)
        for (i, _), sim in similarity.items():
            best[i] = max(best[i], sim)
        keep: list[int] = []
        held = 0
        for i in sorted(range(len(chunks)), key=lambda i: -best[i]):
            if held >= self.prefilter_margin * target:
                break
            keep.append(i)
            held += sizes[i]
        keep.sort()
        new_position = {old: new for new, old in enumerate(keep)}
        kept_similarity = {(new_position[i], start): sim for (i, start), sim in similarity.items() if i in new_position}
        return [chunks[i] for i in keep], [sizes[i] for i in keep], kept_similarity

    # -- level 1: chunks ----------------------------------------------------------------
    def _rank_chunks(self, chunks: Sequence[Chunk], question: str, instruction: str) -> list[_Ranked]:
        probe = PROBE.format(question=question)
        texts = [c.text + probe for c in chunks] + [probe.lstrip()]
        contexts = [instruction] * len(texts) if instruction else None
        scores = self._score(texts, contexts, "ranking chunks")
        baseline = mean(scores[-1].logprobs)
        ranked = []
        for i, (chunk, s) in enumerate(zip(chunks, scores[:-1])):
            cut = len(chunk.text)
            inside = [k for k, (a, _) in enumerate(s.offsets) if a < cut]
            probe_lp = [s.logprobs[k] for k, (a, _) in enumerate(s.offsets) if a >= cut]
            ranked.append(
                _Ranked(
                    index=i,
                    relevance=mean(probe_lp) - baseline,
                    token_logprobs=[s.logprobs[k] for k in inside],
                    token_offsets=[s.offsets[k] for k in inside],
                )
            )
        ranked.sort(key=lambda r: -r.relevance)
        return ranked

    # -- level 2: sentences -------------------------------------------------------------
    def _score_sentences_by_similarity(
        self, chunks: Sequence[Chunk], kept: list[_Ranked], similarity: dict[tuple[int, int], float]
    ) -> list[tuple[float, Sentence]]:
        """Sentence score: similarity to the question plus its chunk's rank; words carry their plain surprisal."""
        out: list[tuple[float, Sentence]] = []
        for rank, r in enumerate(kept):
            chunk = chunks[r.index]
            prior = 1.0 - rank / max(1, len(kept))
            plain = _as_scores(chunk.text, r)
            for sentence in sentences_of([chunk], with_words=True):
                sentence.chunk = r.index
                spans = [(w.start - chunk.start, w.end - chunk.start) for w in sentence.words]
                for w, (n, lp) in zip(sentence.words, assign_tokens(plain, spans)):
                    w.tokens, w.plain, w.logprob = n, lp, lp
                out.append((similarity.get((r.index, sentence.start), 0.0) + SIMILARITY_PRIOR * prior, sentence))
        return out

    def _score_sentences_contrastive(self, chunks: Sequence[Chunk], kept: list[_Ranked], question: str, instruction: str) -> list[tuple[float, Sentence]]:
        """Sentence score: how much reading the question first raises its tokens' log-probs; words keep
        the larger of their two surprisals. Costs a second model pass over the kept chunks."""
        prefix = (instruction + "\n\n" if instruction else "") + QUESTION_PREFIX.format(question=question)
        scores = self._score([chunks[r.index].text for r in kept], [prefix] * len(kept), "reading kept chunks")
        out: list[tuple[float, Sentence]] = []
        for rank, (r, s) in enumerate(zip(kept, scores)):
            chunk = chunks[r.index]
            prior = 1.0 - rank / max(1, len(kept))  # best chunk 1.0, falling to ~0
            plain = {off: lp for off, lp in zip(r.token_offsets, r.token_logprobs)}
            # Per token: how much more predictable the question makes it (contrastive perplexity).
            contrast = [lp - plain[off] if off in plain else 0.0 for off, lp in zip(s.offsets, s.logprobs)]
            without_q = _as_scores(chunk.text, r)
            for sentence in sentences_of([chunk], with_words=True):
                sentence.chunk = r.index
                lo, hi = sentence.start - chunk.start, sentence.end - chunk.start
                gain = mean([c for (a, b), c in zip(s.offsets, contrast) if b > lo and a < hi])
                spans = [(w.start - chunk.start, w.end - chunk.start) for w in sentence.words]
                for w, (n, lp_q), (_, lp_0) in zip(sentence.words, assign_tokens(s, spans), assign_tokens(without_q, spans)):
                    # Informative in either reading: keep the larger surprisal (the smaller log-prob).
                    w.tokens, w.plain, w.logprob = n, lp_0, min(lp_q, lp_0)
                out.append((gain + 0.5 * prior, sentence))
        return out

    def _keep_sentences(self, scored: list[tuple[float, Sentence]], target: int) -> list[Sentence]:
        keep: list[Sentence] = []
        held = 0
        ranked = sorted(scored, key=lambda x: -x[0])
        for rank, (_, sentence) in enumerate(ranked):
            if held >= self.sentence_margin * target:
                break
            # LongLLMLingua's dynamic ratio: the more relevant a sentence, the fewer words it loses.
            sentence.relevance = 1.0 - rank / len(ranked)
            keep.append(sentence)
            held += sentence.tokens
        return sorted(keep, key=lambda s: (s.chunk, s.start))

    # -- level 3: words -----------------------------------------------------------------
    def _drop_words(self, chunks: Sequence[Chunk], sentences: list[Sentence], question: str, instruction: str, target: int) -> list[Sentence]:
        for round_ in range(self.iterations):
            held = sum(s.tokens for s in sentences)
            excess = held - target
            if excess <= 0:
                break
            if round_ > 0:
                self._rescore(chunks, sentences, question, instruction)
            share = excess if round_ == self.iterations - 1 else excess // (self.iterations - round_)
            sentences = _drop_lowest(sentences, share, self.keep_numbers, self.protect)
        return sentences

    def _rescore(self, chunks: Sequence[Chunk], sentences: list[Sentence], question: str, instruction: str) -> None:
        """Score what is left of each chunk, as the model will read it, after the question."""
        prefix = (instruction + "\n\n" if instruction else "") + QUESTION_PREFIX.format(question=question)
        by_chunk: dict[int, list[Sentence]] = {}
        for s in sentences:
            by_chunk.setdefault(s.chunk, []).append(s)
        texts, layouts = [], []
        for i, group in by_chunk.items():
            source = chunks[i]
            parts, spans, at = [], [], 0
            for s in group:
                for w in s.words:
                    piece = source.text[w.start - source.start : w.end - source.start]
                    if parts:
                        parts.append(" ")
                        at += 1
                    spans.append((at, at + len(piece)))
                    parts.append(piece)
                    at += len(piece)
            texts.append("".join(parts))
            layouts.append((group, spans))
        scores = self._score(texts, [prefix] * len(texts), "re-scoring kept words")
        for s, (group, spans) in zip(scores, layouts):
            words = [w for sentence in group for w in sentence.words]
            for w, (n, lp) in zip(words, assign_tokens(s, spans)):
                w.tokens, w.logprob = n, min(lp, w.plain)

    def _score(self, texts: list[str], contexts: list[str] | None, what: str) -> list[Any]:
        if not self.progress:
            return self.scorer.score(texts, contexts)
        with tqdm(total=1, desc=f"perplexity: {what} ({len(texts)} texts)", leave=False) as bar:
            result = self.scorer.score(texts, contexts)
            bar.update(1)
        return result


def _as_scores(text: str, r: _Ranked) -> Any:
    from ctxagent.engines.base import TokenScores

    return TokenScores(text=text, offsets=r.token_offsets, logprobs=r.token_logprobs)


def _drop_lowest(sentences: list[Sentence], tokens: int, keep_numbers: bool, protect: float) -> list[Sentence]:
    """Drop the words with the least surprisal per token until `tokens` tokens are gone.

    A word of a sentence with relevance r must be `protect * r` nats per token more
    predictable than one of an irrelevant sentence to go first. Emptied sentences disappear.
    """
    candidates = [
        ((w.logprob / w.tokens if w.tokens else 0.0) - protect * s.relevance, si, wi)
        for si, s in enumerate(sentences)
        for wi, w in enumerate(s.words)
        if not (keep_numbers and w.has_digit)
    ]
    # Highest mean log-prob = least surprising = least informative: drop first.
    candidates.sort(key=lambda c: -c[0])
    drop: set[tuple[int, int]] = set()
    removed = 0
    for _, si, wi in candidates:
        if removed >= tokens:
            break
        drop.add((si, wi))
        removed += sentences[si].words[wi].tokens
    out = []
    for si, s in enumerate(sentences):
        words = [w for wi, w in enumerate(s.words) if (si, wi) not in drop]
        if words:
            out.append(Sentence(s.chunk, s.start, s.end, words, s.relevance))
    return out
