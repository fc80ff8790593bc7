"""The Ray executor: the same job spread over a Ray cluster, one engine per worker.

The driver (the process that ran `ctxagent batch`) reads the questions, loads
each shard's documents and sends shards to a pool of Ray actors; each actor loads
its own engine once and answers its shard with the local executor (threads and
cross-document batching), and the driver writes results to OUT as shards come
back. So resuming, error lines and progress work exactly as with the local
executor; only where the model runs changes. Documents travel with their shard,
so workers need no shared file system.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from ctxagent import envs
from ctxagent.batch.jobs import BatchQuestion, BatchResult, BatchSettings
from ctxagent.errors import EngineNotInstalled
from ctxagent.types import Document

log = logging.getLogger(__name__)

Lookup = Callable[[str], Document]


class _Worker:
    """A Ray actor: one engine, loaded once, answering shard after shard."""

    def __init__(self, settings: dict[str, Any], env: dict[str, str]) -> None:
        envs.adopt(env)
        from ctxagent.engines import get_engine

        self.settings = BatchSettings.model_validate(settings)
        self.engine = get_engine(self.settings.engine, **self.settings.engine_options)

    def answer(self, questions: list[dict], documents: dict[str, dict]) -> list[dict]:
        from ctxagent.batch.local import answer_all

        docs = {k: Document.model_validate(v) for k, v in documents.items()}
        qs = [BatchQuestion.model_validate(q) for q in questions]
        return [r.model_dump(mode="json") for r in answer_all(qs, docs, self.engine, self.settings)]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EngineNotInstalled("--executor ray needs Ray: `pip install ctxagent[ray]`") from None
    return ray


def answer_stream_ray(
    questions: Iterable[BatchQuestion],
    lookup: Lookup,
    settings: BatchSettings,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    shard_size: int | None = None,
) -> Iterator[BatchResult]:
    """Yield results as shards finish on the Ray workers.

    address: a running cluster ("auto" or "ray://host:10001"); None starts a local Ray.
    workers: actors to start (default: as many as the cluster's CPUs or GPUs allow).
    """
    ray = _import_ray()
    from ray.util import ActorPool

    started_here = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        started_here = True
    try:
        if workers is None:
            resources = ray.cluster_resources()
            by_cpu = int(resources.get("CPU", 1) // max(cpus_per_worker, 1e-9))
            by_gpu = int(resources.get("GPU", 0) // gpus_per_worker) if gpus_per_worker else by_cpu
            workers = max(1, min(by_cpu, by_gpu))
        env = envs.worker_env()  # workers see the driver's cache and offline settings (the model cache above all)
        actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(_Worker)
        log.info("starting %d Ray workers", workers)
        pool = ActorPool([actor.remote(settings.model_dump(mode="json"), env) for _ in range(workers)])
        size = shard_size or settings.concurrency
        pending: list[BatchResult] = []
        shards = _shards(iter(questions), lookup, size, pending)

        def submit(shard: tuple[list[BatchQuestion], dict[str, Document]]) -> None:
            qs, docs = shard
            pool.submit(
                lambda a, v: a.answer.remote(*v),
                ([q.model_dump(mode="json") for q in qs], {k: d.model_dump(mode="json") for k, d in docs.items()}),
            )

        for shard in islice(shards, 2 * workers):  # keep every worker busy, and no more in memory
            submit(shard)
        while True:
            yield from pending  # questions whose document failed to load in the driver
            pending.clear()
            if not pool.has_next():
                break
            for record in pool.get_next_unordered():
                yield BatchResult.model_validate(record)
            nxt = next(shards, None)
            if nxt is not None:
                submit(nxt)
        yield from pending
    finally:
        if started_here:
            ray.shutdown()


def _shards(
    questions: Iterator[BatchQuestion], lookup: Lookup, size: int, failed: list[BatchResult]
) -> Iterator[tuple[list[BatchQuestion], dict[str, Document]]]:
    """Groups of `size` questions with their documents; a document that fails to load
    fails its question here (into `failed`), not on a worker."""
    while True:
        qs: list[BatchQuestion] = []
        docs: dict[str, Document] = {}
        for q in questions:
            try:
                docs[q.doc] = docs.get(q.doc) or lookup(q.doc)
            except Exception as exc:  # noqa: BLE001 - an unreadable document fails its question only
                failed.append(BatchResult.failed(q, exc))
                continue
            qs.append(q)
            if len(qs) >= size:
                break
        if not qs:
            return
        yield qs, docs
