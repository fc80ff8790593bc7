"""One parse of a GGUF file per conversion.

transformers reads a GGUF file's header once for the tokenizer, once for the config and
once for the weights, each time through a new `gguf.GGUFReader`, whose pure-Python parse
of a large vocabulary is the slow part: about 4 s each for SmolLM2's 49K tokens and 48K
merges on one core, 13 of the 32 s the embedded model's one-off conversion took. Inside
`one_parse_per_file()` every reader of the same file is the same (read-only, memory-mapped)
object, so the header is parsed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def one_parse_per_file() -> Iterator[None]:
    """Share one `gguf.GGUFReader` per (file, mode) while the block runs (nothing happens
    where the gguf package is missing: transformers then fails with its own message)."""
    try:
        import gguf
    except ImportError:
        yield
        return
    original = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path: Any, mode: str = "r") -> Any:
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original
