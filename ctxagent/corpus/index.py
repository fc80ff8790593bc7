"""A persistent, incrementally updated search index over every document of a corpus.

`CorpusIndex(corpus).update()` reads the files that are new or changed since the last
update, chunks and embeds only those, drops the documents whose files are gone, and
reuses the chunks and vectors of every unchanged document from the saved index: a
folder of 10,000 files where one changed costs one file's embeddings, not 10,000.

The index is one saved retriever (`ctxagent.retrievers`' checksummed format: chunks,
BM25 state, embedding matrix) plus `state.json`, which records each file's size,
modification time and content hash and the retriever's corpus hash. Anything that
does not check out (a damaged file, other settings, a state that names other chunks
than the index holds) is reported with a warning naming the path and rebuilt from the
files: never used. Two updates of one index never run at once (a file lock beside it;
the second waits, then finds the first one's work done), and an update killed part-way
(`kill -9`) leaves a marker that the next one reports with a warning before it checks
the saved index and re-reads what it must. Memory trees are not built here: the `memory_tree` recipe builds a
document's tree the first time a question needs it and caches it by content hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pydantic import BaseModel, Field

from ctxagent.cache import cache_dir
from ctxagent.chunking import chunk_document
from ctxagent.corpus.records import DocumentRead as _Read
from ctxagent.corpus.records import FileState as _FileState
from ctxagent.corpus.source import Corpus
from ctxagent.errors import InputError
from ctxagent.retrievers.base import IndexFileError, Retriever, ScoredChunk, corpus_hash
from ctxagent.types import Chunk

if TYPE_CHECKING:  # numpy loads when an index is assembled, so `import ctxagent.agent` stays light
    import numpy as np

log = logging.getLogger(__name__)

STATE = "state.json"
INDEX = "index"
LOCK = ".lock"
UPDATING = "updating"  # present while an update runs: found by the next one, the update was killed
STATE_FORMAT = "ctxagent-corpus-index"
STATE_VERSION = 1
RETRIEVERS = ("bm25", "dense", "hybrid")
EXECUTORS = ("local", "ray")


def approximate_tokens(text: str) -> int:
    """About four characters per token: chunking for the index must not need the LLM's
    tokenizer (the index serves any engine); recipes re-chunk what they read with their own."""
    return max(1, math.ceil(len(text) / 4))


class IndexReport(BaseModel):
    """What an update did; `embedded_chunks` counts the chunks sent to the embedding model."""

    documents: int = 0
    chunks: int = 0
    added: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: int = 0
    failed: dict[str, str] = Field(default_factory=dict, description="doc id -> why it could not be read")
    embedded_chunks: int = 0
    rebuilt: bool = Field(default=False, description="true when the saved index could not be used and everything was re-read")
    seconds: float = 0.0
    path: str = ""


def default_index_name(source: Path) -> str:
    """One index per corpus location unless the user names it: a hash of the absolute path."""
    resolved = str(source.expanduser().resolve())
    return f"{source.name or 'corpus'}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"


class CorpusIndex:
    """The saved index of `corpus` (a Corpus, a folder, or a .jsonl of documents).

    name: the index's name under `$CTXAGENT_CACHE/corpora/` (default: derived from the
    corpus path); root: a directory to keep it in instead. retriever: "hybrid" (default),
    "bm25" or "dense"; chunk_tokens: approximate tokens per indexed chunk. Other options
    (model=...) go to the retriever.
    """

    def __init__(
        self,
        corpus: Corpus | str | Path,
        *,
        name: str | None = None,
        root: str | os.PathLike[str] | None = None,
        retriever: str = "hybrid",
        chunk_tokens: int = 200,
        **retriever_options: Any,
    ) -> None:
        if retriever not in RETRIEVERS:
            raise InputError(f"a corpus index uses one of {', '.join(RETRIEVERS)}, not {retriever!r}")
        if chunk_tokens < 16:
            raise InputError(f"chunk_tokens must be at least 16, got {chunk_tokens}")
        self.corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
        if name is not None and (not name.strip() or "/" in name or name.startswith(".")):
            raise InputError(f"index name {name!r} must be a plain file name (letters, digits, - and _)")
        self.path = Path(root) if root is not None else cache_dir("corpora", name or default_index_name(self.corpus.source))
        self.kind, self.chunk_tokens, self.retriever_options = retriever, chunk_tokens, retriever_options
        self.retriever: Retriever | None = None
        self.report: IndexReport | None = None  # what the last update() did
        # Files that could not be read, doc id -> why (after update() or load()): answers name them in their notes.
        self.failed: dict[str, str] = {}

    # ---- settings --------------------------------------------------------------------
    def _new_retriever(self) -> Retriever:
        from ctxagent.retrievers import get_retriever

        return get_retriever(self.kind, **self.retriever_options)

    def settings(self) -> dict[str, Any]:
        return {"retriever": self.kind, "config": self._new_retriever().index_config(), "chunk_tokens": self.chunk_tokens}

    # ---- reading the saved index ---------------------------------------------------------
    def _load_saved(self) -> tuple[dict[str, _FileState], Retriever | None, str | None]:
        """(file states, the saved retriever, why it could not be used). Never raises for damage."""
        state_path, index_path = self.path / STATE, self.path / INDEX
        if not state_path.exists():
            return {}, None, None
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
                raise ValueError(f"not a version-{STATE_VERSION} corpus index state")
            files = {doc_id: _FileState(**entry) for doc_id, entry in state["files"].items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            return {}, None, f"{state_path} is unreadable ({error})"
        if state.get("settings") != self.settings():
            return {}, None, f"it was built with other settings ({state.get('settings')}, now {self.settings()})"
        if not any(f.error is None for f in files.values()):
            return files, None, None
        try:
            retriever = self._new_retriever()
            retriever.restore(index_path, expected_corpus_hash=state.get("corpus_hash"))
        except IndexFileError as error:
            return {}, None, str(error)
        return files, retriever, None

    def load(self) -> "CorpusIndex":
        """Use the saved index as it is (no file is read); InputError if there is none usable."""
        files, retriever, problem = self._load_saved()
        if retriever is None:
            raise InputError(f"no usable index of {self.corpus.source} at {self.path}{f' ({problem})' if problem else ''}: run `ctxagent index {self.corpus.source}` first")
        self.retriever = retriever
        self.failed = {**self.corpus.skipped, **{d: f.error for d, f in files.items() if f.error is not None and d in self.corpus}}
        return self

    # ---- updating ------------------------------------------------------------------------
    def _stat(self, doc_id: str) -> tuple[int, int] | None:
        path = self.corpus._files.get(doc_id)
        if path is None:
            return None
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns

    def update(self, *, executor: str = "local", progress: bool | None = None, ray_options: dict[str, Any] | None = None) -> IndexReport:
        """Bring the index up to date with the corpus and save it; returns what changed.

        One update at a time per index, across processes: a second waits for the lock, then
        sees the first one's saved work and reads only what is still new."""
        if executor not in EXECUTORS:
            raise InputError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
        from filelock import FileLock

        self.path.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path / LOCK)):
            marker = self.path / UPDATING
            if marker.exists():
                log.warning(
                    "the last update of the corpus index at %s was interrupted (%s); checking the saved index and re-reading what it lacks",
                    self.path, marker.read_text(encoding="utf-8", errors="replace").strip() or "no details",
                )
                for leftover in self.path.glob("*.partial-*"):
                    leftover.unlink(missing_ok=True)
            marker.write_text(f"process {os.getpid()} started at {time.strftime('%Y-%m-%d %H:%M:%S')}", encoding="utf-8")
            report = self._update(executor, progress, ray_options)
            marker.unlink()
        self.failed = dict(report.failed)
        return report

    def _update(self, executor: str, progress: bool | None, ray_options: dict[str, Any] | None) -> IndexReport:
        began = time.perf_counter()
        report = IndexReport(path=str(self.path))
        old_files, old, problem = self._load_saved()
        if problem:
            log.warning("the corpus index at %s cannot be used and will be rebuilt: %s", self.path, problem)
            report.rebuilt = True
        old_positions: dict[str, list[int]] = {}
        if old is not None:
            for position, chunk in enumerate(old.chunks):
                old_positions.setdefault(chunk.doc_id, []).append(position)
        ids = self.corpus.ids()
        report.removed = sorted(set(old_files) - set(ids))
        keep, todo = [], []
        for doc_id in ids:
            before = old_files.get(doc_id)
            indexed = before is not None and (before.error is not None or doc_id in old_positions)
            if indexed and before is not None and before.same_stat(self._stat(doc_id)):
                keep.append(doc_id)
            else:
                todo.append(doc_id)
        reads = self._read_all(todo, executor, progress, ray_options or {})
        new_files: dict[str, _FileState] = {}
        for read in reads:  # a file touched but not edited keeps its chunks and vectors
            before = old_files.get(read.doc_id)
            if before is not None and read.state.error is None and before.error is None and read.state.content == before.content and read.doc_id in old_positions:
                keep.append(read.doc_id)
                new_files[read.doc_id] = read.state
        fresh = [r for r in reads if r.doc_id not in new_files]
        pending = [r for r in fresh if r.state.error is None and r.vectors is None and r.chunks]
        if pending and self.kind != "bm25":
            self._embed(pending, progress)
        for read in fresh:
            new_files[read.doc_id] = read.state
            if read.state.error is not None:
                report.failed[read.doc_id] = read.state.error
                log.warning("skipped %s: %s", read.doc_id, read.state.error)
            elif read.doc_id in old_files:
                report.changed.append(read.doc_id)
            else:
                report.added.append(read.doc_id)
            report.embedded_chunks += len(read.chunks) if self.kind != "bm25" and read.state.error is None else 0
        for doc_id in keep:
            new_files.setdefault(doc_id, old_files[doc_id])
            if old_files[doc_id].error is not None:
                report.failed[doc_id] = old_files[doc_id].error or ""
        for doc_id, why in self.corpus.skipped.items():
            report.failed[doc_id] = why
            log.warning("skipped %s: %s", doc_id, why)
        report.unchanged = len([d for d in keep if old_files[d].error is None])
        nothing_new = not fresh and not report.removed and old is not None and not report.rebuilt
        if nothing_new:
            self.retriever = old
            if {d: s for d, s in new_files.items()} != old_files:
                self._write_state(new_files, old.corpus_hash)  # touched files: remember their new stats
        else:
            self.retriever = self._assemble(ids, keep, old, old_positions, {r.doc_id: r for r in fresh}, new_files)
        report.documents = len(ids) - len([d for d in report.failed if d not in self.corpus.skipped])
        report.chunks = len(self.retriever.chunks) if self.retriever is not None else 0
        report.seconds = round(time.perf_counter() - began, 3)
        self.report = report
        return report

    def _read_all(self, doc_ids: list[str], executor: str, progress: bool | None, ray_options: dict[str, Any]) -> list[_Read]:
        if not doc_ids:
            return []
        if executor == "ray":
            from ctxagent.corpus.ray_indexing import read_with_ray

            return read_with_ray(self, doc_ids, _read_shard, embed=self.kind != "bm25", **ray_options)
        from tqdm.auto import tqdm

        show = progress if progress is not None else len(doc_ids) >= 200
        return [self.read_one(doc_id) for doc_id in tqdm(doc_ids, desc="reading", unit="doc", disable=not show, dynamic_ncols=True)]

    def read_one(self, doc_id: str) -> _Read:
        """Read and chunk one document; a file that cannot be read is recorded, not raised."""
        for attempt in range(2):  # a file written to while it is read is read again, once
            try:
                stat = self._stat(doc_id)
            except OSError as error:
                return _Read(doc_id, _FileState(error=f"cannot open it ({error.strerror or error})"))
            state = _FileState(*(stat or (-1, -1)))
            try:
                document = self.corpus.get(doc_id, fresh=True)
            except Exception as error:  # noqa: BLE001 - any file that cannot be read is recorded with why, never raised
                state.error = str(error) if isinstance(error, (InputError, OSError)) else f"cannot read it ({type(error).__name__}: {error})"
                return _Read(doc_id, state)
            try:
                unchanged = self._stat(doc_id) == stat
            except OSError:
                unchanged = False
            if unchanged:
                break
        else:
            state.error = "it changed while it was being read (twice); it is read again at the next update"
            return _Read(doc_id, state)
        state.content = document.content_hash
        return _Read(doc_id, state, chunk_document(document, approximate_tokens, self.chunk_tokens))

    def _embed(self, reads: Sequence[_Read], progress: bool | None) -> None:
        """One batched encode for every chunk of every document read (faster than per document)."""
        dense = self._dense_part(self._new_retriever())
        texts = [c.text for r in reads for c in r.chunks]
        show = progress if progress is not None else len(texts) >= 1000
        vectors = dense.encode(texts, dense.document_prompt, show_progress=show)
        cursor = 0
        for read in reads:
            read.vectors = vectors[cursor : cursor + len(read.chunks)]
            cursor += len(read.chunks)

    @staticmethod
    def _dense_part(retriever: Retriever) -> Any:
        return getattr(retriever, "dense", retriever)

    def _assemble(
        self,
        order: list[str],
        keep: Iterable[str],
        old: Retriever | None,
        old_positions: dict[str, list[int]],
        fresh: dict[str, _Read],
        files: dict[str, _FileState],
    ) -> Retriever | None:
        """The new index: unchanged documents' chunks and vectors copied, fresh ones added, in corpus order."""
        import numpy as np

        kept = set(keep)
        chunks: list[Chunk] = []
        blocks: list[np.ndarray] = []
        old_vectors = self._dense_part(old).embeddings if old is not None and self.kind != "bm25" else None
        for doc_id in order:
            if doc_id in kept and doc_id in old_positions and old is not None:
                positions = old_positions[doc_id]
                chunks.extend(old.chunks[p] for p in positions)
                if old_vectors is not None:
                    blocks.append(old_vectors[positions])
            elif doc_id in fresh and fresh[doc_id].chunks:
                chunks.extend(fresh[doc_id].chunks)
                if self.kind != "bm25":
                    assert fresh[doc_id].vectors is not None
                    blocks.append(fresh[doc_id].vectors)
        if not chunks:  # every file failed or the corpus emptied: no index, only the state
            shutil.rmtree(self.path / INDEX, ignore_errors=True)
            self._write_state(files, None)
            return None
        retriever = self._new_retriever()
        digest = corpus_hash(chunks)
        if self.kind == "bm25":
            retriever.index(chunks)
        else:
            matrix = np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
            if self.kind == "hybrid":
                retriever.bm25._build([c.text for c in chunks])  # type: ignore[attr-defined]
            self._dense_part(retriever).embeddings = matrix
            retriever._adopt(chunks, digest)
        retriever.save(self.path / INDEX)
        self._write_state(files, digest)
        return retriever

    def _write_state(self, files: dict[str, _FileState], digest: str | None) -> None:
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "source": str(self.corpus.source.resolve()),
            "settings": self.settings(),
            "corpus_hash": digest,
            "files": {doc_id: vars(s) for doc_id, s in sorted(files.items())},
        }
        partial = self.path / f"{STATE}.partial-{os.getpid()}"
        partial.write_text(json.dumps(state, indent=1, ensure_ascii=False), encoding="utf-8")
        partial.replace(self.path / STATE)

    # ---- searching -----------------------------------------------------------------------
    def search(self, query: str, k: int = 8) -> list[ScoredChunk]:
        if self.retriever is None:
            self.load()
        assert self.retriever is not None
        return self.retriever.search(query, k)


def open_index(
    corpus: CorpusIndex | Corpus | str | Path,
    *,
    update: bool = True,
    encoding: str = "utf-8",
    executor: str = "local",
    progress: bool | None = None,
    ray_options: dict[str, Any] | None = None,
    **index_options: Any,
) -> CorpusIndex:
    """The one way to open a corpus index: a CorpusIndex of a path, a Corpus or a CorpusIndex,
    brought up to date with the files (`update=True`) or loaded as saved (`update=False`), unless
    it is open already. `index.report` says what the update did (None when it was loaded).
    index_options: CorpusIndex's (name, root, retriever, chunk_tokens, retriever options)."""
    if isinstance(corpus, CorpusIndex):
        index = corpus
    else:
        index = CorpusIndex(corpus if isinstance(corpus, Corpus) else Corpus(corpus, encoding=encoding), **index_options)
    if index.retriever is None:
        if update:
            index.update(executor=executor, progress=progress, ray_options=ray_options)
        else:
            index.load()
    return index


def _read_shard(index_spec: dict[str, Any], doc_ids: list[str], embed: bool) -> list[dict[str, Any]]:
    """On a Ray worker: read (and embed) a shard of documents as the local build does; plain data back."""
    index = CorpusIndex(index_spec["source"], root=index_spec["root"], retriever=index_spec["kind"], chunk_tokens=index_spec["chunk_tokens"], **index_spec["options"])
    reads = [index.read_one(doc_id) for doc_id in doc_ids]
    if embed:
        ready = [r for r in reads if r.state.error is None and r.chunks]
        if ready:
            index._embed(ready, progress=False)
    return [
        {"doc_id": r.doc_id, "state": vars(r.state), "chunks": [c.model_dump() for c in r.chunks], "vectors": r.vectors}
        for r in reads
    ]


__all__ = ["CorpusIndex", "IndexReport", "approximate_tokens", "default_index_name", "open_index"]
