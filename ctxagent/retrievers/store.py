"""Indexes built once and reused: the on-disk cache keyed by chunk content and settings.

`cached_index("dense", chunks)` returns an indexed retriever. The first call builds the
index and saves it under `cache_dir("indexes", name, key)`; later calls with the same
chunks and the same index settings (retriever, embedding model, BM25 parameters) load
it. The key is a hash of the chunks' content and those settings, so editing a
document or switching models never reuses a stale index. A cached index that fails its
checks (damaged file, other model, other chunks) is reported with a warning naming the
path and the reason, deleted and rebuilt: never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from ctxagent.cache import cache_dir
from ctxagent.retrievers.base import IndexFileError, Retriever, corpus_hash
from ctxagent.types import Chunk

log = logging.getLogger(__name__)


def index_cache_path(retriever: Retriever, chunks: Sequence[Chunk], cache: str | os.PathLike[str] | None = None) -> Path:
    """Where `cached_index` keeps the index of `chunks` built by `retriever`'s settings."""
    key_source = json.dumps({"retriever": retriever.name, "config": retriever.index_config(), "corpus": corpus_hash(chunks)}, sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:32]
    root = Path(cache) / retriever.name if cache is not None else cache_dir("indexes", retriever.name)
    return root / key


def cached_index(
    name: str | Retriever,
    chunks: Sequence[Chunk],
    cache: str | os.PathLike[str] | bool | None = None,
    **options: Any,
) -> Retriever:
    """An indexed retriever for `chunks`, loaded from the cache when a valid index is there.

    `name` is a registered retriever name (options go to its constructor) or an unindexed
    retriever instance. `cache` is the cache root (default: `cache_dir("indexes")`), or
    False to build without caching.
    """
    from ctxagent.retrievers import get_retriever

    retriever = get_retriever(name, **options) if isinstance(name, str) else name
    if cache is False:
        retriever.index(chunks)
        return retriever
    path = index_cache_path(retriever, chunks, None if cache in (None, True) else cache)  # type: ignore[arg-type]
    expected = corpus_hash(chunks)
    if path.exists():
        try:
            retriever.restore(path, expected_corpus_hash=expected)
            retriever._adopt(list(chunks), expected)  # answer with the caller's own (equal) chunks
            log.info("loaded the cached %s index of %d chunks from %s", retriever.name, len(retriever.chunks), path)
            return retriever
        except IndexFileError as error:
            log.warning("cached %s index at %s cannot be used and will be rebuilt: %s", retriever.name, path, error)
            shutil.rmtree(path, ignore_errors=True)
    retriever.index(chunks)
    try:
        retriever.save(path)
    except OSError as error:  # a full or read-only disk costs the cache, not the answer
        log.warning("could not save the %s index to %s (%s); it will be rebuilt next time", retriever.name, path, error)
    return retriever
