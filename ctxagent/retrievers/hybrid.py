"""Hybrid retrieval: BM25 and dense retrieval fused into one ranking.

Two fusions, chosen with `fusion=`:

- `"rrf"`: weighted reciprocal rank fusion (Cormack et al., 2009): a chunk scores
  sum_i w_i / (rrf_k + rank_i) over the two ranked lists. Ranks only, no calibration.
  Its weakness is rank 1: when one retriever is right and the other confidently wrong
  (a paraphrase BM25 cannot match, an ID that embeddings blur), the wrong chunk gets
  credit from both lists and the right one from one, so it wins whatever the evidence.
- `"convex"` (default): a weighted mean of two scores on absolute scales, in the spirit
  of Bruch et al. (2023, "An Analysis of Fusion Functions for Hybrid Retrieval"), who find
  convex combination beats RRF: cosine similarity, and BM25 normalised per query by the
  score of an ideal match (see `BM25Retriever.normalized_scores`), raised to
  `lexical_exponent` (default 2). That normalised score is roughly the share of the
  query's information (IDF mass) a chunk contains; squaring it means a chunk holding
  half of the query's terms gets a quarter of the lexical credit, so a chunk that shares
  one word with a paraphrased question cannot outvote the chunk the embedding clearly
  prefers, while a chunk matching a rare ID in full keeps its full credit. Every chunk
  is scored exactly (a sparse lookup and one matrix product), so no candidate is lost
  to a cut-off.

`benchmarks/retrievers.py` measures both on exact-term and paraphrased needle queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctxagent.errors import InputError
from ctxagent.retrievers import register
from ctxagent.retrievers.base import Retriever
from ctxagent.retrievers.bm25 import BM25Retriever
from ctxagent.retrievers.dense import DenseRetriever
from ctxagent.retrievers.topk import top_k_rows
from ctxagent.types import Chunk

FUSIONS = ("convex", "rrf")
# Queries fused at a time: bounds the two (queries x chunks) score matrices.
_QUERY_BLOCK = 32


def convex_fusion(lexical: Any, cosine: Any, *, bm25_weight: float = 1.0, dense_weight: float = 1.0, lexical_exponent: float = 2.0) -> Any:
    """The convex fusion of normalised BM25 scores and cosine similarities (arrays of one shape):
    the weighted mean of BM25 ** lexical_exponent and cosine. The hybrid retriever fuses with it,
    and so does recipe retrieval's shortlist over large documents (recipes/retrieval.py)."""
    return (bm25_weight * lexical**lexical_exponent + dense_weight * cosine) / (bm25_weight + dense_weight)


@register("hybrid")
class HybridRetriever(Retriever):
    """BM25 + dense, fused by `fusion` ("convex", the default, or "rrf").

    Options: everything `dense` takes (`model`, `device`, `batch_size`, ...), BM25's `k1`,
    `b`, `stopwords`, `stemmer`, and fusion settings that do not change the index:
    `bm25_weight` / `dense_weight` (default 1.0 each), `lexical_exponent` (convex only,
    default 2.0), and for RRF `rrf_k` (default 60,
    the usual constant) and `candidates` (how deep each ranked list goes; default 100).
    """

    name = "hybrid"

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
        show_progress: bool | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        query_threads: int | None = 1,
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: str | None = "en_plus",
        stemmer: str | None = None,
        rrf_k: float = 60.0,
        bm25_weight: float = 1.0,
        dense_weight: float = 1.0,
        candidates: int = 100,
        fusion: str = "convex",
        lexical_exponent: float = 2.0,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise InputError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if lexical_exponent <= 0:
            raise InputError(f"lexical_exponent must be positive, got {lexical_exponent}")
        self.fusion, self.lexical_exponent = fusion, float(lexical_exponent)
        if rrf_k < 0 or bm25_weight < 0 or dense_weight < 0 or bm25_weight + dense_weight == 0:
            raise InputError(f"hybrid fusion needs rrf_k >= 0 and non-negative weights, not both 0; got rrf_k={rrf_k}, bm25_weight={bm25_weight}, dense_weight={dense_weight}")
        if candidates <= 0:
            raise InputError(f"candidates must be positive, got {candidates}")
        self.bm25 = BM25Retriever(k1=k1, b=b, stopwords=stopwords, stemmer=stemmer)
        self.dense = DenseRetriever(model=model, device=device, batch_size=batch_size, show_progress=show_progress, query_prompt=query_prompt, document_prompt=document_prompt, query_threads=query_threads)
        self.rrf_k, self.bm25_weight, self.dense_weight, self.candidates = float(rrf_k), float(bm25_weight), float(dense_weight), candidates

    def index_config(self) -> dict[str, Any]:
        return {"bm25": self.bm25.index_config(), "dense": self.dense.index_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "HybridRetriever":
        config = dict(config)  # nested index settings first, so run-time options given to load() win
        return cls(**{**config.pop("bm25", {}), **config.pop("dense", {}), **config})

    def _build(self, texts: list[str]) -> None:
        self.bm25._build(texts)
        self.dense._build(texts)

    def _search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        if self.fusion == "rrf":
            depth = min(max(k, self.candidates), self._n)
            lexical = self.bm25._search(queries, depth)
            semantic = self.dense._search(queries, depth)
            return [self.rrf(lex, sem, k) for lex, sem in zip(lexical, semantic)]
        results: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), _QUERY_BLOCK):
            block = queries[start : start + _QUERY_BLOCK]
            fused = convex_fusion(
                self.bm25.normalized_scores(block), self.dense.similarities(block),
                bm25_weight=self.bm25_weight, dense_weight=self.dense_weight, lexical_exponent=self.lexical_exponent,
            )  # fmt: skip
            results.extend(top_k_rows(fused, k))
        return results

    def rrf(self, lexical: list[tuple[int, float]], semantic: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
        """Weighted RRF of two best-first (position, score) lists; ties go to the BM25 order."""
        fused: dict[int, float] = {}
        for weight, hits in ((self.bm25_weight, lexical), (self.dense_weight, semantic)):
            for rank, (position, _) in enumerate(hits, start=1):
                fused[position] = fused.get(position, 0.0) + weight / (self.rrf_k + rank)
        return sorted(fused.items(), key=lambda item: -item[1])[:k]

    @property
    def _n(self) -> int:
        assert self.dense.embeddings is not None
        return self.dense.embeddings.shape[0]

    def _save_state(self, directory: Path) -> None:
        (directory / "bm25").mkdir()
        (directory / "dense").mkdir()
        self.bm25._save_state(directory / "bm25")
        self.dense._save_state(directory / "dense")

    def _load_state(self, directory: Path) -> None:
        self.bm25._load_state(directory / "bm25")
        self.dense._load_state(directory / "dense")

    def _adopt(self, chunks: list[Chunk], digest: str) -> None:
        super()._adopt(chunks, digest)
        for part in (self.bm25, self.dense):
            part._adopt(chunks, digest)

    def _check_loaded(self) -> None:
        self.bm25._check_loaded()
        self.dense._check_loaded()
