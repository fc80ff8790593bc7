"""`ctxagent.batch.run`: read the job, skip what OUT already holds, answer the rest, log each result."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from ctxagent.batch.corpus import read_questions
from ctxagent.batch.jobs import BatchResult, BatchSettings, BatchSummary
from ctxagent.batch.output import ResultLog
from ctxagent.corpus.source import Corpus
from ctxagent.engines.base import Engine
from ctxagent.errors import InputError

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


def run(
    corpus: str | Path | Corpus,
    questions: str | Path,
    out: str | Path,
    *,
    settings: BatchSettings | None = None,
    engine: Engine | None = None,
    executor: str = "local",
    retry_errors: bool = False,
    progress: bool = True,
    ray_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> BatchSummary:
    """Answer every question in QUESTIONS.jsonl about its document in `corpus`, appending to `out`.

    settings: engine, recipe, budget and concurrency (keyword overrides such as
    `recipe="direct"` or `concurrency=16` update them). engine: an Engine instance to
    use instead of building one from settings (local executor only). retry_errors:
    ask again the questions whose earlier result was an error line. ray_options:
    `address`, `workers`, `cpus_per_worker`, `gpus_per_worker`, `shard_size`.
    """
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    unknown = set(overrides) - set(BatchSettings.model_fields)
    if unknown:
        raise InputError(f"unknown batch settings {sorted(unknown)}; known: {', '.join(BatchSettings.model_fields)}")
    try:
        settings = BatchSettings.model_validate({**(settings or BatchSettings()).model_dump(), **overrides})
    except ValidationError as exc:
        raise InputError(f"invalid batch settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    if executor == "ray" and engine is not None:
        raise InputError("the ray executor builds one engine per worker from settings.engine; pass the engine by name, not as an instance")
    docs = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    job = read_questions(questions)
    began = time.perf_counter()
    with ResultLog(out) as results:
        if retry_errors:
            dropped = results.drop_errors()
            if dropped:
                log.info("retrying %d questions that failed before", dropped)
        done = results.finished()
        todo = [q for q in job if q.id not in done]
        summary = BatchSummary(total=len(job), skipped=len(job) - len(todo), out=str(out))
        if not todo:
            return summary
        batchers: list[Any] = []
        lookup = _lookup(docs, todo, executor)
        if executor == "local":
            from ctxagent.batch.local import answer_stream

            if engine is None:
                from ctxagent.engines import get_engine

                engine = get_engine(settings.engine, **settings.engine_options)
            stream: Iterator[BatchResult] = answer_stream(todo, lookup, engine, settings, batcher_out=batchers)
        else:
            from ctxagent.batch.ray_executor import answer_stream_ray

            stream = answer_stream_ray(todo, lookup, settings, **(ray_options or {}))
        bar = _progress(len(job), summary.skipped, enabled=progress)
        try:
            for result in stream:
                results.write(result)
                if result.ok:
                    summary.answered += 1
                else:
                    summary.failed += 1
                    log.warning("%s (%s): %s: %s", result.id, result.doc, result.error_type, result.error)
                bar.update(1)
                bar.set_postfix(errors=summary.failed, refresh=False)
        finally:
            bar.close()
            close = getattr(stream, "close", None)
            if close:
                close()
        summary.seconds = round(time.perf_counter() - began, 3)
        if batchers:
            summary.engine_calls = batchers[0].engine_calls
    return summary


def _lookup(docs: Corpus, questions: list[Any], executor: str) -> Any:
    """docs.get, except that questions across the corpus ("corpus": true, doc "") get the
    corpus index, updated once here for all of them."""
    if not any(q.corpus for q in questions):
        return docs.get
    if executor != "local":
        raise InputError("questions with \"corpus\": true run on the local executor only; drop --executor ray for this job")
    from ctxagent.corpus.index import open_index

    index = open_index(docs)
    report = index.report
    assert report is not None
    log.info("corpus index: %d documents, %d chunks (%d embedded now)", report.documents, report.chunks, report.embedded_chunks)

    def lookup(doc_id: str) -> Any:
        return index if doc_id == "" else docs.get(doc_id)

    return lookup


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="q", desc="questions", disable=not enabled, dynamic_ncols=True, smoothing=0.1)
