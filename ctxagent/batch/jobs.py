"""The records of a batch job: what goes in (questions, settings) and what comes out (one line each)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ctxagent.defaults import DEFAULT_ENGINE, DEFAULT_RECIPE
from ctxagent.types import Answer, Basis, Budget, Citation, Usage


class BatchQuestion(BaseModel):
    """One line of QUESTIONS.jsonl: `{"id": "q1", "doc": "report.md", "question": "..."}`.

    `id` defaults to the line number; `doc` names a document of the corpus (for a
    folder, its path relative to the folder). A question that names no document and
    sets `"corpus": true` is asked across the whole corpus (retrieval picks the
    documents; `doc` is then ""). Other keys ride along into the output.
    """

    id: str
    doc: str = ""
    question: str
    corpus: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)


class BatchResult(BaseModel):
    """One line of OUT.jsonl. Exactly one of `text` (answered) or `error` (failed) is set."""

    id: str
    doc: str
    question: str
    corpus: bool = False
    text: str | None = None
    citations: list[Citation] = Field(default_factory=list)
    recipe: str = ""
    partial: bool = False
    notes: list[str] = Field(default_factory=list)
    basis: Basis | None = None  # Answer.basis
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    error_type: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def answered(cls, q: BatchQuestion, answer: Answer) -> "BatchResult":
        return cls(
            id=q.id, doc=q.doc, question=q.question, corpus=q.corpus, text=answer.text, citations=answer.citations,
            recipe=answer.recipe, partial=answer.partial, notes=answer.notes, basis=answer.basis, usage=answer.usage, extra=q.extra,
        )

    @classmethod
    def failed(cls, q: BatchQuestion, exc: BaseException) -> "BatchResult":
        return cls(id=q.id, doc=q.doc, question=q.question, corpus=q.corpus, error=str(exc) or repr(exc), error_type=type(exc).__name__, extra=q.extra)


class BatchSettings(BaseModel):
    """How to answer: everything a worker (a thread here, or a Ray actor elsewhere) needs."""

    engine: str = DEFAULT_ENGINE
    engine_options: dict[str, Any] = Field(default_factory=dict)
    recipe: str = DEFAULT_RECIPE
    recipe_options: dict[str, Any] = Field(default_factory=dict)
    budget: Budget = Field(default_factory=Budget)
    concurrency: int = Field(default=8, ge=1, description="questions in flight at once; their engine calls are merged")
    max_wait: float = Field(default=1.0, ge=0, description="seconds a merged engine call waits for stragglers")


class BatchSummary(BaseModel):
    total: int = Field(description="questions in QUESTIONS.jsonl")
    skipped: int = Field(description="already in OUT from an earlier run")
    answered: int = 0
    failed: int = 0
    seconds: float = 0.0
    engine_calls: int | None = Field(default=None, description="calls to the underlying engine (local executor)")
    out: str = ""
