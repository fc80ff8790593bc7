"""The provenance stamp of an eval run, from the one copy in benchmarks/provenance.py.

Eval results are published figures like any benchmark's, so they carry the same block
(commit, dirty refusal, machine, load, command). The module lives with the benchmarks in
a source checkout; an installed ctxagent has no checkout and no commit to name, so
there the stamp is left out and the report says so.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def _module() -> ModuleType | None:
    path = CHECKOUT / "benchmarks" / "provenance.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("ctxagent_benchmarks_provenance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def stamp(allow_dirty: bool = False, argv: list[str] | None = None) -> dict[str, Any] | None:
    """The block for summary.json, taken at the start; raises DirtyTree on uncommitted changes unless allowed."""
    module = _module()
    return module.stamp(allow_dirty, argv) if module else None


def finish(block: dict[str, Any] | None) -> dict[str, Any] | None:
    module = _module()
    return module.finish(block) if module and block else block


def markdown_line(block: dict[str, Any] | None) -> str:
    module = _module()
    if not module or not block:
        return "Provenance: none recorded (not run from a ctxagent source checkout)."
    return module.markdown_line(block)
