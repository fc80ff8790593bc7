"""What reading one corpus document yields, shared by the local index build (index.py) and the
Ray workers (ray_indexing.py), so neither module has to import the other's internals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ctxagent.types import Chunk

if TYPE_CHECKING:  # numpy loads with the index, not with `import ctxagent.agent`
    import numpy as np


@dataclass
class FileState:
    """A document's file as the index last saw it: stat, content hash, or why it could not be read."""

    size: int = -1
    mtime_ns: int = -1
    content: str = ""
    error: str | None = None

    def same_stat(self, stat: tuple[int, int] | None) -> bool:
        return stat is not None and (self.size, self.mtime_ns) == stat


@dataclass
class DocumentRead:
    """One document read, chunked and (for dense indexes) embedded, ready to join the index."""

    doc_id: str
    state: FileState
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
