"""The questions of a batch job (QUESTIONS.jsonl). `Corpus` lives in ctxagent.corpus; it is
re-exported here for code that imported it from this module."""

from __future__ import annotations

import json
from pathlib import Path

from ctxagent.batch.jobs import BatchQuestion
from ctxagent.corpus.source import Corpus
from ctxagent.errors import InputError

__all__ = ["Corpus", "DOC_KEYS", "read_questions"]

DOC_KEYS = ("doc", "document", "doc_id")


def read_questions(path: str | Path) -> list[BatchQuestion]:
    """QUESTIONS.jsonl: one `{"id"?, "doc", "question"}` object per line (or `{"corpus": true,
    "question"}` for a question across the whole corpus); ids default to line numbers."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"questions file not found: {path}")
    questions: list[BatchQuestion] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise InputError(f"{path} line {number}: not valid JSON") from None
            if not isinstance(record, dict):
                raise InputError(f"{path} line {number}: expected an object like {{\"doc\": ..., \"question\": ...}}")
            doc = next((record.pop(k) for k in DOC_KEYS if k in record), None)
            question = record.pop("question", None)
            across = record.pop("corpus", False)
            if not isinstance(across, bool) or (across and doc is not None):
                raise InputError(f"{path} line {number}: \"corpus\" must be true or false, and a question with \"corpus\": true names no \"doc\"")
            if (doc is None and not across) or not isinstance(question, str) or not question.strip():
                raise InputError(f"{path} line {number}: needs \"doc\" (the document's id in the corpus) or \"corpus\": true (ask across all documents), and a non-empty \"question\"")
            qid = str(record.pop("id", number))
            if qid in seen:
                raise InputError(f"{path} line {number}: question id {qid!r} appears twice; ids must be unique so a rerun can resume")
            seen.add(qid)
            questions.append(BatchQuestion(id=qid, doc="" if across else str(doc), question=question.strip(), corpus=across, extra=record))
    if not questions:
        raise InputError(f"{path}: no questions found")
    return questions
