"""The retriever contract and the on-disk index format every retriever shares.

A retriever turns a list of chunks into an index, and a query into the chunks that
answer it, best first. Building an index can take minutes (embedding a corpus), so
an index saves to a directory and loads back. Loading never trusts the directory:
the manifest says which retriever, which settings (the embedding model) and which
chunks built it, and a checksum of every file; anything that does not match raises
`IndexCorruptedError` or `IndexMismatchError`, so a stale or damaged index is rebuilt
instead of silently answering with the wrong vectors.

Layout of a saved index directory:

    manifest.json   format, retriever name, settings, corpus hash, sha256 of each file
    chunks.jsonl    the indexed chunks, one JSON object per line, in index order
    ...             the retriever's own state files (npy, json), never pickles
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctxagent.errors import CtxAgentError, InputError
from ctxagent.types import Chunk

FORMAT = "ctxagent-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"


class IndexFileError(CtxAgentError):
    """Base of the errors about a saved index."""


class IndexCorruptedError(IndexFileError):
    """A saved index is unreadable, incomplete or altered: delete it and index again."""


class IndexMismatchError(IndexFileError):
    """A saved index was built by another retriever, model, settings or corpus than asked for."""


class NotIndexedError(CtxAgentError, RuntimeError):
    """`search` was called before `index` or `load`."""


class ScoredChunk(BaseModel):
    """One search hit. `rank` is 1 for the best hit; `score` is the retriever's own scale
    (BM25 score, cosine similarity, fused RRF score), comparable only within one result list."""

    model_config = ConfigDict(frozen=True)

    chunk: Chunk
    score: float
    rank: int = Field(ge=1)


def corpus_hash(chunks: Sequence[Chunk]) -> str:
    """Content hash of an ordered chunk list: same chunks (ids, offsets, text), same hash."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(json.dumps([chunk.doc_id, chunk.index, chunk.start, chunk.end, chunk.text], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_query(query: Any, k: Any) -> None:
    if not isinstance(query, str):
        raise InputError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InputError("query is empty: pass the text to search for")
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InputError(f"k must be a positive integer (the number of chunks to return), got {k!r}")


class Retriever(ABC):
    """Base class of every retriever: subclass it and register with
    `@ctxagent.retrievers.register("name")` to add your own.

    Subclasses implement `_build(texts)`, `_search(queries, k)`, `_save_state(dir)`,
    `_load_state(dir)` and `index_config()`; this class does input checks, hashing and
    the manifest, so every retriever persists and fails the same way.
    """

    name: ClassVar[str] = "retriever"

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.corpus_hash: str | None = None

    # ---- what subclasses provide -------------------------------------------------
    @abstractmethod
    def index_config(self) -> dict[str, Any]:
        """Settings that change the index (model, BM25 parameters): stored in the manifest,
        part of the cache key, and compared on load. JSON-able values only."""

    @abstractmethod
    def _build(self, texts: list[str]) -> None: ...

    @abstractmethod
    def _search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to k (chunk position, score) pairs, best first."""

    @abstractmethod
    def _save_state(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_state(self, directory: Path) -> None: ...

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Retriever":
        """Rebuild an unindexed retriever from a manifest's `index_config()`."""
        return cls(**config)

    # ---- the public surface --------------------------------------------------------
    @property
    def is_indexed(self) -> bool:
        return bool(self.chunks)

    def index(self, chunks: Sequence[Chunk]) -> None:
        """Index `chunks` (replacing any earlier index). Search results refer to these objects."""
        if isinstance(chunks, (str, bytes)) or not isinstance(chunks, Sequence):
            raise InputError(f"index() takes a list of Chunk objects, got {type(chunks).__name__}: chunk documents with ctxagent.chunk_document first")
        if not chunks:
            raise InputError("index() got no chunks: chunk a non-empty document first")
        for position, chunk in enumerate(chunks):
            if not isinstance(chunk, Chunk):
                raise InputError(f"index() item {position} is a {type(chunk).__name__}, not a Chunk: chunk documents with ctxagent.chunk_document first")
        chunks = list(chunks)
        self._build([chunk.text for chunk in chunks])
        self._adopt(chunks, corpus_hash(chunks))

    def _adopt(self, chunks: list[Chunk], digest: str) -> None:
        """Make `chunks` (hashing to `digest`) the chunks this index answers with."""
        self.chunks, self.corpus_hash = chunks, digest

    def search(self, query: str, k: int = 5) -> list[ScoredChunk]:
        """The up to `k` chunks that best match `query`, best first (fewer if the index is smaller,
        or, for BM25, if fewer chunks share a term with the query)."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[ScoredChunk]]:
        """`search` for many queries at once (one batched encode for dense retrievers)."""
        if isinstance(queries, str):
            raise InputError("search_many() takes a list of queries; use search() for one")
        for query in queries:
            _check_query(query, k)
        if not self.is_indexed:
            raise NotIndexedError(f"this {self.name} retriever has no index: call index(chunks) or {type(self).__name__}.load(path) before search()")
        if not queries:
            return []
        hits = self._search(list(queries), min(k, len(self.chunks)))
        return [
            [ScoredChunk(chunk=self.chunks[pos], score=float(score), rank=rank) for rank, (pos, score) in enumerate(per_query, start=1)]
            for per_query in hits
        ]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to directory `path` (replaced if it exists), atomically: a reader
        never sees a half-written index. Returns the path."""
        if not self.is_indexed:
            raise NotIndexedError(f"nothing to save: call index(chunks) on this {self.name} retriever first")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            with (partial / CHUNKS).open("w", encoding="utf-8") as handle:
                for chunk in self.chunks:
                    handle.write(chunk.model_dump_json())
                    handle.write("\n")
            self._save_state(partial)
            files = {
                str(p.relative_to(partial)): _sha256_file(p) for p in sorted(partial.rglob("*")) if p.is_file()
            }
            manifest = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "retriever": self.name,
                "config": self.index_config(),
                "corpus_hash": self.corpus_hash,
                "n_chunks": len(self.chunks),
                "files": files,
            }
            (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
            old = target.with_name(f"{target.name}.old-{os.getpid()}")
            if target.exists():
                target.rename(old)
            partial.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> "Retriever":
        """Load a saved index. On `Retriever` it builds whichever registered retriever saved it;
        on a subclass it insists on that kind. `options` add run-time settings (device, batch size)
        that do not change the index. Raises IndexCorruptedError / IndexMismatchError."""
        manifest = read_manifest(path)
        from ctxagent.retrievers import registry

        kind = registry.get(manifest["retriever"])
        if cls is not Retriever and not issubclass(kind, cls):
            raise IndexMismatchError(f"{path} holds a {manifest['retriever']!r} index, not a {cls.name!r} one: index the chunks again with {cls.name!r}")
        retriever = kind.from_config({**manifest["config"], **options})
        retriever.restore(path, manifest=manifest)
        return retriever

    def restore(self, path: str | os.PathLike[str], expected_corpus_hash: str | None = None, manifest: dict[str, Any] | None = None) -> None:
        """Fill this retriever from a saved index, checking it was built with this retriever's
        settings (and, if given, from chunks with `expected_corpus_hash`)."""
        directory = Path(path)
        manifest = manifest or read_manifest(directory)
        if manifest["retriever"] != self.name:
            raise IndexMismatchError(f"{directory} holds a {manifest['retriever']!r} index, not a {self.name!r} one")
        mine = self.index_config()
        if manifest["config"] != mine:
            diff = {key: (manifest["config"].get(key), mine.get(key)) for key in set(manifest["config"]) | set(mine) if manifest["config"].get(key) != mine.get(key)}
            raise IndexMismatchError(f"{directory} was built with other settings than asked for (saved, asked): {diff}")
        if expected_corpus_hash is not None and manifest["corpus_hash"] != expected_corpus_hash:
            raise IndexMismatchError(f"{directory} indexes other chunks (corpus hash {manifest['corpus_hash']}, expected {expected_corpus_hash})")
        chunks = _read_chunks(directory / CHUNKS)
        if len(chunks) != manifest["n_chunks"] or corpus_hash(chunks) != manifest["corpus_hash"]:
            raise IndexCorruptedError(f"{directory}: its chunks do not match its manifest; delete it and index again")
        try:
            self._load_state(directory)
        except IndexFileError:
            raise
        except Exception as error:  # a state file that passed its checksum but still fails to parse
            raise IndexCorruptedError(f"{directory}: cannot read the {self.name} index state ({error}); delete it and index again") from error
        self._adopt(chunks, manifest["corpus_hash"])
        self._check_loaded()

    def _check_loaded(self) -> None:
        """Subclasses assert their state agrees with `self.chunks` (e.g. one vector per chunk)."""


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a saved index's manifest and the checksum of every file it lists."""
    directory = Path(path)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise IndexCorruptedError(f"{directory} is not a saved index (no {MANIFEST}): save one with retriever.save(path)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexCorruptedError(f"{manifest_path} is unreadable ({error}); delete {directory} and index again") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorruptedError(f"{manifest_path} is not a ctxagent index manifest; delete {directory} and index again")
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexMismatchError(f"{directory} uses index format {manifest.get('version')}, this ctxagent reads {FORMAT_VERSION}: index again")
    missing = [key for key in ("retriever", "config", "corpus_hash", "n_chunks", "files") if key not in manifest]
    if missing:
        raise IndexCorruptedError(f"{manifest_path} lacks {missing}; delete {directory} and index again")
    for name, expected in manifest["files"].items():
        file = directory / name
        if not file.is_file():
            raise IndexCorruptedError(f"{directory} is incomplete: {name} is missing; delete it and index again")
        if _sha256_file(file) != expected:
            raise IndexCorruptedError(f"{directory}: {name} was altered or damaged (checksum mismatch); delete it and index again")
    if CHUNKS not in manifest["files"]:
        raise IndexCorruptedError(f"{manifest_path} does not list {CHUNKS}; delete {directory} and index again")
    return manifest


def _read_chunks(path: Path) -> list[Chunk]:
    try:
        with path.open(encoding="utf-8") as handle:
            return [Chunk.model_validate_json(line) for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError, ValidationError) as error:
        raise IndexCorruptedError(f"{path} is unreadable ({error}); delete {path.parent} and index again") from error
