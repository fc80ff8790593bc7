"""The local executor: questions answered by a pool of threads sharing one engine.

Each thread runs the ordinary SDK call (`ContextAgent.ask`) for one question at a
time; the engine they share is a BatchingEngine, so a recipe step's prompts from
all threads go to the model as one batched call. Results are identical to asking
one question at a time (greedy decoding; the hf engine pads on the left and masks
the padding), only faster.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

from ctxagent.agent import ContextAgent
from ctxagent.batch.jobs import BatchQuestion, BatchResult, BatchSettings
from ctxagent.engines.base import Engine
from ctxagent.engines.batching import BatchingEngine
from ctxagent.types import Document

Lookup = Callable[[str], Document]
_DONE = object()


def answer_stream(
    questions: Iterable[BatchQuestion],
    lookup: Lookup,
    engine: Engine,
    settings: BatchSettings,
    *,
    batcher_out: list[BatchingEngine] | None = None,
) -> Iterator[BatchResult]:
    """Yield one BatchResult per question, in the order they finish.

    `lookup(doc_id)` returns the document or raises; its failure, like any failure
    inside the recipe, becomes an error result for that question only. Closing the
    iterator (Ctrl-C in the consumer) stops the threads taking new questions; they
    are daemon threads, so an interrupted process does not wait for them.
    """
    batcher = BatchingEngine(engine, max_wait=settings.max_wait)
    if batcher_out is not None:
        batcher_out.append(batcher)
    agent = ContextAgent(engine=batcher, recipe=settings.recipe, budget=settings.budget)
    source = iter(questions)
    take_lock, lookup_lock = threading.Lock(), threading.Lock()
    stop = threading.Event()
    results: queue.Queue = queue.Queue()

    def work() -> None:
        # Each thread counts as a caller for its whole life (joined before the threads start),
        # so the others wait briefly for its next question instead of going ahead without it.
        try:
            while not stop.is_set():
                with take_lock:
                    q = next(source, None)
                if q is None:
                    return
                try:
                    with lookup_lock:
                        doc = lookup(q.doc)
                    answer = agent.ask(doc, q.question, **settings.recipe_options)
                    results.put(BatchResult.answered(q, answer))
                except Exception as exc:  # noqa: BLE001 - recorded as this question's error line
                    results.put(BatchResult.failed(q, exc))
        finally:
            batcher.leave()
            results.put(_DONE)

    threads = [threading.Thread(target=work, name=f"ctxagent-batch-{i}", daemon=True) for i in range(settings.concurrency)]
    batcher.join(len(threads))
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            try:
                item = results.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue
            if item is _DONE:
                running -= 1
            else:
                yield item
    finally:
        stop.set()


def answer_all(questions: Iterable[BatchQuestion], documents: dict[str, Document], engine: Engine, settings: BatchSettings) -> list[BatchResult]:
    """Answer questions whose documents are given in memory (used by the Ray workers)."""

    def lookup(doc_id: str) -> Document:
        return documents[doc_id]

    return list(answer_stream(questions, lookup, engine, settings))
