"""Reading and embedding a corpus on Ray workers (`ctxagent index DIR --executor ray`).

The driver decides what to read (new and changed files); Ray tasks each take a shard
of document ids, read and chunk them with the same code as the local path, embed the
chunks with their own copy of the embedding model, and send back chunks and vectors.
The driver assembles and saves the index, so the saved result is the same as a local
build. Workers read the files themselves, so the corpus must be on a file system they
share with the driver (one machine, or a network mount).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ctxagent import envs
from ctxagent.corpus.records import DocumentRead, FileState
from ctxagent.errors import EngineNotInstalled

log = logging.getLogger(__name__)

# index.py's `_read_shard`: (index spec, doc ids, embed) -> plain records, run on a worker.
ShardReader = Callable[[dict[str, Any], list[str], bool], list[dict[str, Any]]]


def read_with_ray(
    index: Any,
    doc_ids: list[str],
    read_shard: ShardReader,
    *,
    embed: bool,
    address: str | None = None,
    shard_size: int = 64,
    cpus_per_task: float = 1.0,
) -> list[DocumentRead]:
    """Read (and embed) `doc_ids` of the CorpusIndex `index` in Ray tasks of `shard_size` documents,
    each running `read_shard`; results in input order."""
    try:
        import ray
    except ImportError:
        raise EngineNotInstalled("--executor ray needs Ray: `pip install ctxagent[ray]`") from None
    from tqdm.auto import tqdm

    from ctxagent.types import Chunk

    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"env_vars": envs.worker_env()}, log_to_driver=False, include_dashboard=False)
    spec = {
        "source": str(index.corpus.source), "root": str(index.path), "kind": index.kind,
        "chunk_tokens": index.chunk_tokens, "options": index.retriever_options,
    }
    task = ray.remote(num_cpus=cpus_per_task)(read_shard)
    shards = [doc_ids[i : i + shard_size] for i in range(0, len(doc_ids), shard_size)]
    pending = {task.remote(spec, shard, embed): n for n, shard in enumerate(shards)}
    done: dict[int, list[dict[str, Any]]] = {}
    with tqdm(total=len(doc_ids), desc="reading (ray)", unit="doc", dynamic_ncols=True, disable=len(doc_ids) < 200) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            n = pending.pop(ready[0])
            done[n] = ray.get(ready[0])
            bar.update(len(done[n]))
    return [
        DocumentRead(item["doc_id"], FileState(**item["state"]), [Chunk(**c) for c in item["chunks"]], item["vectors"])
        for n in range(len(shards)) for item in done[n]
    ]
