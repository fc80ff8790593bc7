"""Corpus jobs: many questions over many documents, JSONL in, JSONL out, resumable.

    from ctxagent import batch
    summary = batch.run("docs/", "questions.jsonl", "answers.jsonl")

The shell form is `ctxagent batch CORPUS QUESTIONS.jsonl -o OUT.jsonl`. Each
answered question is appended to OUT (flushed and fsync'd) the moment it is done,
so an interrupted run loses nothing; running again with the same OUT skips what is
there. Questions run concurrently and their engine calls are merged across
documents (see ctxagent.engines.batching). `executor="ray"` spreads the job over a
Ray cluster with one engine per worker.
"""

from __future__ import annotations

from ctxagent.batch.corpus import read_questions
from ctxagent.batch.jobs import BatchQuestion, BatchResult, BatchSettings, BatchSummary
from ctxagent.batch.output import ResultLog, read_results
from ctxagent.batch.runner import run
from ctxagent.corpus.source import Corpus

__all__ = [
    "BatchQuestion",
    "BatchResult",
    "BatchSettings",
    "BatchSummary",
    "Corpus",
    "ResultLog",
    "read_questions",
    "read_results",
    "run",
]
