"""Lexical retrieval with BM25, on the `bm25s` library.

Why bm25s and not rank_bm25: bm25s scores eagerly at index time into a sparse
matrix, so a query is a sparse lookup plus a top-k, where rank_bm25 loops over every
document in Python per query; `benchmarks/retrievers.py` measures the gap (see
docs/retrievers.md). bm25s is also actively released, saves without pickles, and
ships a tokenizer with stopwords and optional stemming.

BM25 finds exact terms (IDs, names, codes such as "XQ-7741") that embeddings blur,
and misses paraphrases that share no word with the chunk: the hybrid retriever
combines it with the dense one for that reason.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ctxagent.errors import InputError
from ctxagent.retrievers import register
from ctxagent.retrievers.base import IndexCorruptedError, Retriever
from ctxagent.retrievers.topk import top_k_rows

# Words of one or more letters/digits: keeps single digits and letters ("Q3", "7", "A-7").
TOKEN_PATTERN = r"(?u)\b\w+\b"


@register("bm25")
class BM25Retriever(Retriever):
    """Okapi BM25 (Lucene variant) over lower-cased word tokens, stopwords removed.

    Options: `k1`, `b` (BM25's term-frequency saturation and length normalisation),
    `stopwords` ("en_plus", the default: 179 English words including question words,
    so "what"/"why" do not count as query terms; "en": a short Lucene-style list; another
    language bm25s knows; or None), `stemmer` (a PyStemmer language such as "english";
    needs `pip install PyStemmer`). Only chunks that share at least one term with the
    query are returned, so a search may return fewer than k.
    """

    name = "bm25"

    def __init__(self, k1: float = 1.5, b: float = 0.75, stopwords: str | None = "en_plus", stemmer: str | None = None) -> None:
        super().__init__()
        if k1 < 0 or not 0 <= b <= 1:
            raise InputError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b} (defaults: 1.5, 0.75)")
        self.k1, self.b, self.stopwords, self.stemmer = float(k1), float(b), stopwords, stemmer
        self._tokenizer: Any = None
        self._bm25: Any = None

    def index_config(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "stopwords": self.stopwords, "stemmer": self.stemmer}

    def _new_tokenizer(self) -> Any:
        from bm25s.tokenization import Tokenizer

        stem = None
        if self.stemmer:
            try:
                import Stemmer  # PyStemmer
            except ImportError:
                raise InputError(f"stemmer={self.stemmer!r} needs PyStemmer: `pip install PyStemmer`, or pass stemmer=None") from None
            stem = Stemmer.Stemmer(self.stemmer)
        return Tokenizer(lower=True, splitter=TOKEN_PATTERN, stopwords=self.stopwords or [], stemmer=stem)

    def _build(self, texts: list[str]) -> None:
        import bm25s

        tokenizer = self._new_tokenizer()
        show = len(texts) >= 10_000
        tokens = tokenizer.tokenize(texts, update_vocab=True, return_as="tuple", show_progress=show)
        # scipy builds the sparse score matrix ~3.5x faster than bm25s's numpy path
        # (measured: 4.7 s vs 17.3 s for 100k chunks); scipy comes with sentence-transformers.
        csc_backend = "scipy" if importlib.util.find_spec("scipy") else "numpy"
        bm25 = bm25s.BM25(k1=self.k1, b=self.b, method="lucene", csc_backend=csc_backend)
        bm25.index(tokens, show_progress=show)
        self._tokenizer, self._bm25 = tokenizer, bm25

    def _query_ids(self, queries: list[str]) -> tuple[list[list[int]], list[int]]:
        """Known term ids per query, and how many of each query's terms the corpus lacks."""
        ids = self._tokenizer.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)
        unknown = self._tokenizer.word_to_id.get("")  # bm25s's placeholder for "no known term"
        known = [[i for i in query_ids if i != unknown] for query_ids in ids]
        stop = set(self._tokenizer.stopwords or ())
        n_terms = [sum(1 for w in self._tokenizer.splitter(q.lower()) if w not in stop) for q in queries]
        return known, [max(0, n - len(k)) for n, k in zip(n_terms, known)]

    def _search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        # Scores from the sparse matrix plus our own top-k: bm25s's retrieve() adds ~40 ms of
        # overhead per query at 100k chunks on top of a lookup that takes well under 1 ms.
        wanted, _ = self._query_ids(queries)
        results: list[list[tuple[int, float]]] = []
        for query_ids in wanted:
            if not query_ids:
                results.append([])
                continue
            scores = np.asarray(self._bm25.get_scores_from_ids(query_ids), dtype=np.float32)[None, :]
            results.append([(i, s) for i, s in top_k_rows(scores, k)[0] if s > 0])
        return results

    def normalized_scores(self, queries: list[str]) -> np.ndarray:
        """BM25 score of every chunk for each query, divided by the score that a chunk of average
        length containing each query term once would get (terms the corpus lacks count at the
        highest IDF), clipped to [0, 1]. So 1 means "matches the whole query", and a chunk that
        matches only a common word of a query scores near 0 however it ranks: an absolute scale
        the hybrid retriever can add to cosine similarity."""
        known, missing = self._query_ids(queries)
        n_docs = int(self._bm25.scores["num_docs"])
        df = np.diff(np.asarray(self._bm25.scores["indptr"]))
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        idf_unseen = float(np.log1p((n_docs + 0.5) / 0.5))
        out = np.zeros((len(queries), n_docs), dtype=np.float32)
        for row, (ids, n_missing) in enumerate(zip(known, missing)):
            if not ids:
                continue
            reference = (float(idf[ids].sum()) + n_missing * idf_unseen) / (1.0 + self.k1)
            out[row] = np.clip(self._bm25.get_scores_from_ids(ids) / reference, 0.0, 1.0)
        return out

    def _save_state(self, directory: Path) -> None:
        self._bm25.save(str(directory))
        self._tokenizer.save_vocab(str(directory))

    def _load_state(self, directory: Path) -> None:
        import bm25s

        self._bm25 = bm25s.BM25.load(str(directory), load_corpus=False)
        tokenizer = self._new_tokenizer()
        tokenizer.load_vocab(str(directory))
        self._tokenizer = tokenizer

    def _check_loaded(self) -> None:
        n_docs = int(self._bm25.scores["num_docs"])
        if n_docs != len(self.chunks):
            raise IndexCorruptedError(f"the BM25 index covers {n_docs} chunks but {len(self.chunks)} were saved; index again")

