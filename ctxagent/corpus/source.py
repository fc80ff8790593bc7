"""A corpus: documents by id, from a folder of files or a JSONL of documents.

Documents are loaded when a question needs them, not up front, so a corpus of
many files starts at once and a file that cannot be read fails only its own
questions (the batch runner records them as error lines), never the run.
The corpus package owns it; its index (index.py), questions across it (ask.py)
and the batch runner all read documents through it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ctxagent.errors import InputError
from ctxagent.loaders import LOADERS, load_document, printable
from ctxagent.types import Document


class Corpus:
    """Documents by id. A folder: every supported file below it, its id the path relative
    to the folder ("reports/q3.pdf"). A JSONL file: one `{"id": ..., "text": ...}` per line
    (optional "metadata")."""

    def __init__(self, source: str | Path, *, encoding: str = "utf-8", cache_size: int = 64) -> None:
        self.source = Path(source)
        self.encoding = encoding
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # questions across the corpus read documents from many threads
        if not self.source.exists():
            raise InputError(f"corpus not found: {self.source} (pass a folder of documents or a .jsonl file)")
        self._files: dict[str, Path] = {}
        self._offsets: dict[str, int] = {}
        # Entries of the folder that look like documents but cannot be opened at all (a
        # symlink loop, a dangling link), by id -> why: reported in answers' notes, never dropped silently.
        self.skipped: dict[str, str] = {}
        if self.source.is_dir():
            for path in sorted(self.source.rglob("*")):
                if path.suffix.lower() not in LOADERS:
                    continue
                doc_id = printable(path.relative_to(self.source).as_posix())  # a non-UTF-8 name as \xNN escapes
                try:
                    path.stat()
                except OSError as exc:
                    self.skipped[doc_id] = f"cannot open it ({exc.strerror or exc}){' (a symbolic link)' if path.is_symlink() else ''}"
                    continue
                if path.is_file():
                    self._files[doc_id] = path
            if not self._files:
                raise InputError(f"{self.source}: no documents found (supported: {', '.join(sorted(LOADERS))})")
        elif self.source.suffix.lower() in (".jsonl", ".ndjson"):
            self._index_jsonl()
        else:
            raise InputError(f"corpus {self.source} must be a folder or a .jsonl file of {{\"id\", \"text\"}} lines")

    def _index_jsonl(self) -> None:
        """Remember where each document's line starts; parse the text only when asked."""
        with self.source.open("rb") as f:
            offset = 0
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                        doc_id = str(record["id"])
                    except (ValueError, KeyError, TypeError):
                        raise InputError(f"{self.source} line {number}: expected a JSON object with \"id\" and \"text\"") from None
                    if doc_id in self._offsets:
                        raise InputError(f"{self.source} line {number}: document id {doc_id!r} appears twice; ids must be unique")
                    self._offsets[doc_id] = offset
                offset += len(line)
        if not self._offsets:
            raise InputError(f"{self.source}: no documents found (expected one {{\"id\", \"text\"}} object per line)")

    def ids(self) -> list[str]:
        return list(self._files or self._offsets)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._files or doc_id in self._offsets

    def __len__(self) -> int:
        return len(self._files) + len(self._offsets)

    def get(self, doc_id: str, *, fresh: bool = False) -> Document:
        """The document `doc_id`; InputError if it is unknown or cannot be read. fresh: read the
        file again even if a copy is cached (the indexer, which must see what is on disk now)."""
        with self._lock:
            if fresh:
                self._cache.pop(doc_id, None)
            return self._get(doc_id)

    def _get(self, doc_id: str) -> Document:
        if doc_id in self._cache:
            self._cache.move_to_end(doc_id)
            return self._cache[doc_id]
        if doc_id in self._files:
            doc = load_document(self._files[doc_id], doc_id=doc_id, encoding=self.encoding)
        elif doc_id in self._offsets:
            doc = self._read_jsonl(doc_id)
        else:
            hint = ", ".join(self.ids()[:5]) + (", ..." if len(self) > 5 else "")
            raise InputError(f"document {doc_id!r} is not in the corpus {self.source} (it has: {hint})")
        self._cache[doc_id] = doc
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return doc

    def _read_jsonl(self, doc_id: str) -> Document:
        with self.source.open("rb") as f:
            f.seek(self._offsets[doc_id])
            record: dict[str, Any] = json.loads(f.readline())
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{self.source}: document {doc_id!r} has no text (its \"text\" is missing or empty)")
        return Document(id=doc_id, text=text, metadata=record.get("metadata") or {})
