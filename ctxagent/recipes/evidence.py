"""Evidence selection by scores: which source sentences the answer step gets to see.

A 135M model asked to *copy* the sentence that answers copies something else often
enough to lose the needle (issue 14: retrieval ranked the needle's chunk first, the
copy missed it). So no recipe asks the model to write its evidence any more. Every
sentence of the chunks a recipe chose to read is scored by three readers that cannot
mis-copy, combined here and nowhere else:

- lexical: BM25 (bm25s) over sentences, normalised per query so 1 means "holds every
  query term" (`BM25Retriever.normalized_scores`): exact names, numbers and ids;
- dense: cosine similarity to the query under the sentence encoder (all-MiniLM-L6-v2):
  paraphrase. When no sentence shares much vocabulary with the query (best lexical
  score under `low_overlap`) the question is taken as paraphrased and the dense score
  leads (`paraphrase_lexical_weight`);
- model: for the few best candidates only, how much the sentence raises the engine's
  log-probability of the question (log p(question | sentence) - log p(question), the
  question-aware ranking of LongLLMLingua), in one batched `ctx.score` call.

A sentence that does not stand alone (it opens with a pronoun or a connective, or has
almost no content words) is widened to include the sentence before it. Selected spans
become `Fact`s: verified by construction, since they are cut from the source.

Chains (multi-hop): `bridge_terms` names what a fact introduces that the question does
not (a name, a rare word) and no other fact repeats; `follow_chain` searches for those
terms and keeps the sentences that continue the chain, up to `Budget.max_hops` rounds,
each recorded in the trace as a `hop` step.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from ctxagent.boilerplate import boilerplate_spans, in_spans, is_boilerplate
from ctxagent.cancel import SlicePace
from ctxagent.citations import citation_for, content_words
from ctxagent.compressors.units import Sentence, sentences_of
from ctxagent.defaults import RERANK, SENTENCE_ENCODER
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.reading import Fact, Facts
from ctxagent.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

# A sentence that opens like this leans on the one before it for its subject.
_LEANS_BACK = re.compile(
    r"^\W*(he|she|it|they|this|that|these|those|his|her|its|their|there|then|but|so|and|which|such|both|the latter|the former)\b",
    re.IGNORECASE,
)
# Fewer content words than this and a sentence is not self-contained either ("So it was.").
_MIN_CONTENT_WORDS = 4
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
# How the question is read after a candidate sentence when the engine scores it.
_MODEL_CONTEXT = "Text: {sentence}\nQuestion:"
_MODEL_BASELINE = "Question:"


# Sentences encoded between two looks at the run's time budget and cancel token.
ENCODE_SLICE = 16
_ENCODE_PACE = SlicePace()


class SentencePool:
    """Every sentence of a recipe's chunks, indexed once so each query (the question, a
    recurrent reader's expanded query, each hop's follow-up) costs a lookup, not a re-index."""

    def __init__(self, chunks: Sequence[Chunk], encoder: str = SENTENCE_ENCODER) -> None:
        self.chunks = list(chunks)
        self.sentences: list[Sentence] = sentences_of(self.chunks)
        self.texts = [self._text(s) for s in self.sentences]
        self.encoder_name = encoder
        self._lexical = None
        self._vectors: dict[int, np.ndarray] = {}
        self._idf: dict[str, float] | None = None
        self._furniture: list[bool] | None = None

    def _text(self, s: Sentence) -> str:
        chunk = self.chunks[s.chunk]
        return chunk.text[s.start - chunk.start : s.end - chunk.start]

    def in_chunks(self, positions: Sequence[int] | None) -> list[int]:
        """Indices of the sentences inside the chunks at `positions` (all when None)."""
        if positions is None:
            return list(range(len(self.sentences)))
        wanted = set(positions)
        return [i for i, s in enumerate(self.sentences) if s.chunk in wanted]

    def lexical(self, query: str) -> np.ndarray:
        """BM25 of every sentence for `query`, on the 0..1 scale of a whole-query match."""
        import numpy as np

        if not self.texts:
            return np.zeros(0, dtype=np.float32)
        if self._lexical is None:
            from ctxagent.retrievers.bm25 import BM25Retriever

            self._lexical = BM25Retriever()
            self._lexical.index([Chunk(doc_id="sentence", index=i, start=0, end=len(t), text=t) for i, t in enumerate(self.texts)])
        return self._lexical.normalized_scores([query])[0]

    def dense(self, query: str, idx: Sequence[int]) -> np.ndarray:
        """Cosine similarity to `query` of the sentences `idx`; each sentence is encoded once per
        pool, when first asked for, so retrieve_then_reason embeds only what it retrieved."""
        import numpy as np

        if not idx:
            return np.zeros(0, dtype=np.float32)
        from ctxagent.encoders import load_encoder

        encoder = load_encoder(self.encoder_name)
        missing = [i for i in idx if i not in self._vectors]
        for at in range(0, len(missing), ENCODE_SLICE):  # a slice at a time, so a run out of time stops between slices
            part = missing[at : at + ENCODE_SLICE]
            with _ENCODE_PACE.piece():
                vectors = encoder.encode([self.texts[i] for i in part], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            self._vectors.update(zip(part, vectors))
        query_vector = encoder.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        return np.stack([self._vectors[i] for i in idx]) @ query_vector

    def rarity(self, word: str) -> float:
        """Inverse sentence frequency of a lower-cased word in the pool (high = rare here)."""
        if self._idf is None:
            counts: dict[str, int] = {}
            for text in self.texts:
                for w in set(content_words(text)):
                    counts[w] = counts.get(w, 0) + 1
            n = len(self.texts)
            self._idf = {w: math.log((n + 1) / (c + 0.5)) for w, c in counts.items()}
        return self._idf.get(word, math.log(len(self.texts) + 2))

    def furniture(self, documents: Sequence[Document]) -> list[bool]:
        """For each sentence, whether it is page furniture (a reference-list line, an "[edit]"
        heading, a licence footer: ctxagent.boilerplate), computed once per pool."""
        if self._furniture is None:
            spans = {d.id: boilerplate_spans(d.text) for d in documents}
            self._furniture = [
                in_spans(s.start, s.end, spans.get(self.chunks[s.chunk].doc_id, ())) or is_boilerplate(self.texts[i]) for i, s in enumerate(self.sentences)
            ]
        return self._furniture

    def span(self, i: int, widen: bool = True) -> tuple[int, int]:
        """Source span of sentence i, with the sentence before it when i does not stand alone."""
        s = self.sentences[i]
        if not widen or i == 0:
            return s.start, s.end
        text = self.texts[i]
        prev = self.sentences[i - 1]
        leans = bool(_LEANS_BACK.match(text)) or len(content_words(text)) < _MIN_CONTENT_WORDS
        gap = self.chunks[s.chunk].text[prev.end - self.chunks[s.chunk].start : s.start - self.chunks[s.chunk].start] if prev.chunk == s.chunk else "\n\n"
        if leans and prev.chunk == s.chunk and "\n\n" not in gap:
            return prev.start, s.end
        return s.start, s.end


@dataclass
class Scored:
    """One candidate sentence and what each reader said about it."""

    sentence: int  # index into the pool
    lexical: float
    dense: float
    model: float = 0.0
    base: float = 0.0  # weighted lexical + dense, 0..1: what the floor applies to
    score: float = 0.0  # base plus the model's vote: what orders the facts
    standout: bool = False  # a paraphrase the encoder finds far more similar than anything else: passes the floor


@dataclass
class EvidenceSelector:
    """How sentences are scored and which are kept.

    floor: least base score (0..1) for a sentence to be evidence at all, so a document
        that does not answer yields no facts (and the answer says "not found");
    keep: facts kept per query; rerank: candidates the engine scores (0 turns the model off);
    low_overlap / paraphrase_lexical_weight: below that best lexical score the query is
        treated as paraphrased and BM25's weight drops to that value;
    standout_z / standout_min / standout_similarity: in a paraphrased query, the encoder's
        first sentence passes the floor when it lies that many deviations above the other
        sentences (at least standout_min of them) and is at least that similar;
    model_weight: how far the engine's vote (a log-prob gain, clipped to +-1 nat per
        token) can move a sentence's score.
    """

    lexical_weight: float = 1.0
    dense_weight: float = 1.0
    model_weight: float = 0.15
    floor: float = 0.3
    keep: int = 4
    rerank: int = RERANK
    low_overlap: float = 0.35
    paraphrase_lexical_weight: float = 0.25
    widen: bool = True
    encoder: str = SENTENCE_ENCODER
    standout_z: float = 3.0
    standout_min: int = 20
    standout_similarity: float = 0.25

    def pool(self, chunks: Sequence[Chunk]) -> SentencePool:
        return SentencePool(chunks, self.encoder)

    def score(self, pool: SentencePool, query: str, positions: Sequence[int] | None = None) -> list[Scored]:
        """Lexical and dense scores of the sentences in `positions`' chunks, best base first.

        In a paraphrased query (no sentence shares much vocabulary with it), the sentence the
        encoder ranks first is marked `standout` when its similarity lies `standout_z` standard
        deviations above the rest of at least `standout_min` sentences: a sentence that says
        what the question asks in other words is such an outlier (issue 25: the paraphrased
        needles of the eval lie 3.2 to 6.2 deviations out, and none passed the floor alone)."""
        import numpy as np

        idx = pool.in_chunks(positions)
        if not idx:
            return []
        lexical, dense = pool.lexical(query), pool.dense(query, idx)
        best_lexical = max(float(lexical[i]) for i in idx)
        paraphrased = best_lexical < self.low_overlap
        w_lex = min(self.lexical_weight, self.paraphrase_lexical_weight) if paraphrased else self.lexical_weight
        total = w_lex + self.dense_weight
        out = []
        for i, similarity in zip(idx, dense):
            lx, dn = float(lexical[i]), max(0.0, float(similarity))
            base = (w_lex * lx + self.dense_weight * dn) / total
            out.append(Scored(sentence=i, lexical=lx, dense=dn, base=base, score=base))
        if paraphrased and len(idx) >= self.standout_min:
            top = int(np.argmax(dense))
            rest = np.delete(dense, top)
            spread = float(rest.std()) or 1.0
            if float(dense[top]) >= self.standout_similarity and (float(dense[top]) - float(rest.mean())) / spread >= self.standout_z:
                out[top].standout = True
        out.sort(key=lambda s: -s.base)
        return out

    def model_vote(self, ctx: RunContext, pool: SentencePool, candidates: list[Scored], question: str, step: str) -> None:
        """One batched scoring call: how much each candidate raises log p(question)."""
        if not candidates or self.model_weight <= 0 or self.rerank <= 0:
            return
        asked = " " + question
        contexts = [_MODEL_CONTEXT.format(sentence=pool.texts[c.sentence]) for c in candidates] + [_MODEL_BASELINE]
        scores = ctx.score([asked] * len(contexts), contexts, step=f"{step}:model", candidates=len(candidates))
        means = [sum(s.logprobs) / len(s.logprobs) if s.logprobs else 0.0 for s in scores]
        baseline = means[-1]
        for c, m in zip(candidates, means[:-1]):
            c.model = max(-1.0, min(1.0, m - baseline))
            c.score = c.base + self.model_weight * c.model

    def select(
        self,
        ctx: RunContext,
        pool: SentencePool,
        documents: Sequence[Document],
        query: str,
        *,
        question: str | None = None,
        positions: Sequence[int] | None = None,
        exclude: Callable[[int], bool] = lambda i: False,
        step: str = "select",
        keep: int | None = None,
        **detail: object,
    ) -> list[Fact]:
        """The best sentences for `query` among `positions`' chunks, as facts, best first.

        `question` is what the engine is asked to predict (the user's question; the query
        may be an expansion of it). Sentences for which `exclude` is true are skipped.
        """
        question = question or query
        considered = self.score(pool, query, positions)
        scored = [s for s in considered if (s.base >= self.floor or s.standout) and not exclude(s.sentence)]
        furniture = pool.furniture(documents)
        content = [s for s in scored if not furniture[s.sentence]]
        passed_over = len(scored) - len(content)
        scored = content or scored  # furniture is evidence only when nothing else is
        candidates = scored[: max(self.rerank, keep or self.keep)]
        self.model_vote(ctx, pool, candidates[: self.rerank], question, step)
        candidates.sort(key=lambda s: -s.score)
        chosen = candidates[: keep or self.keep]
        by_id = {d.id: d for d in documents}
        facts = []
        for c in chosen:
            start, end = pool.span(c.sentence, self.widen)
            chunk = pool.chunks[pool.sentences[c.sentence].chunk]
            facts.append(Fact(citation=citation_for(by_id[chunk.doc_id], start, end), relevance=round(c.score, 4), chunk=pool.sentences[c.sentence].chunk, about=c.standout))
        ctx.trace.add(
            step,
            query=query[:120],
            sentences=len(considered),
            above_floor=len(scored),
            furniture_passed_over=passed_over if scored is content else 0,
            kept=[[f.citation.doc_id, f.citation.start, f.citation.end, f.relevance] for f in facts],
            readers=[[round(c.lexical, 3), round(c.dense, 3), round(c.model, 3)] for c in chosen],
            **detail,
        )
        return facts


def feedback_terms(pool: SentencePool, question: str, positions: Sequence[int], sentences: int = 2, words: int = 4) -> list[str]:
    """Pseudo-relevance feedback for a paraphrased question: the rarest new content words of the
    sentences among `positions`' chunks that the encoder finds most like the question. They
    are in the document's own vocabulary, so a lexical retriever can use them."""
    idx = pool.in_chunks(positions)
    if not idx:
        return []
    similarity = pool.dense(question, idx)
    best = [idx[k] for k in similarity.argsort()[::-1][:sentences]]
    asked = set(content_words(question))
    found = [w for i in best for w in content_words(pool.texts[i]) if w not in asked and not w.isdigit() and len(w) > 2]
    return sorted(dict.fromkeys(found), key=lambda w: -pool.rarity(w))[:words]


# -- chains ---------------------------------------------------------------------------------
def bridge_terms(fact: Fact, question: str, others: Sequence[Fact], pool: SentencePool, limit: int = 3) -> list[str]:
    """What `fact` brings in that the question does not name and no other fact repeats:
    its rarest new content words (names first), at most `limit`. Empty when the fact is
    already connected, so a chain is only followed where it is open."""
    asked = set(content_words(question))
    elsewhere = {w for f in others if f is not fact for w in content_words(f.text)}
    words = []
    for m in _WORD.finditer(fact.text):
        w = m.group()
        low = w.lower()
        if low in asked or low in elsewhere or low not in content_words(low) or low in words or len(low) < 3:
            continue
        if w.isdigit():  # a number is usually the answer itself, not a link to follow
            continue
        words.append(low)
    capitalised = {m.group().lower() for m in _WORD.finditer(fact.text) if m.group()[0].isupper() and m.start() > 0}
    words.sort(key=lambda w: (w not in capitalised, -pool.rarity(w)))
    return words[:limit]


@dataclass
class Hop:
    """One round of following a chain: the follow-up query and the facts it added."""

    query: str
    added: list[Fact] = field(default_factory=list)


def follow_chain(
    ctx: RunContext,
    selector: EvidenceSelector,
    pool: SentencePool,
    documents: Sequence[Document],
    question: str,
    facts: Facts,
    *,
    max_hops: int,
    fetch: Callable[[str], Sequence[int] | None] = lambda query: None,
    step: str = "hop",
) -> list[Hop]:
    """Follow open chains from the best facts, up to `max_hops` rounds.

    Each round takes the best facts whose `bridge_terms` are not empty, searches for
    those terms (`fetch(query)` names the chunks to look in: a retriever's hits, or None
    for every chunk of the pool), and keeps the best sentence that contains a bridge term
    and is not yet a fact. A found link inherits its parent's relevance (just below it),
    so the answer step sees the chain together. Stops early when no chain is open.
    """
    hops: list[Hop] = []
    frontier = facts.best(2)
    for round_no in range(max_hops):
        queries = []
        for parent in frontier:
            terms = bridge_terms(parent, question, facts.items, pool)
            if terms:
                queries.append((parent, " ".join(terms)))
        if not queries:
            ctx.trace.add(step, round=round_no + 1, why="no open chain: every best fact is connected to the question or to another fact")
            break
        added: list[Fact] = []
        for parent, query in queries:
            taken = {(f.citation.doc_id, f.citation.start) for f in facts.items}
            positions = fetch(query)
            lexical = pool.lexical(query)
            found = selector.select(
                ctx,
                pool,
                documents,
                query,
                question=question,
                positions=positions,
                step=f"{step}:select",
                keep=1,
                exclude=lambda i: (pool.chunks[pool.sentences[i].chunk].doc_id, pool.span(i, selector.widen)[0]) in taken
                or lexical[i] <= 0,
            )
            for fact in found:
                fact.relevance = round(parent.relevance - 0.001 * (round_no + 1), 4)
            facts.add(found)
            added += found
            hops.append(Hop(query=query, added=found))
            ctx.trace.add(step, round=round_no + 1, query=query, parent=[parent.citation.doc_id, parent.citation.start], found=[[f.citation.doc_id, f.citation.start, f.citation.end] for f in found])
        if not added:
            break
        frontier = added
    return hops
