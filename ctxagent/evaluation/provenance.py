"""The provenance stamp of an eval run (ctxagent/provenance.py, which the benchmarks use too).

Eval results are published figures like any benchmark's, so they carry the same block
(commit, dirty refusal, machine, load, command). An installed ctxagent has no checkout
and no commit to name, so there the stamp is left out and the report says so.
"""

from __future__ import annotations

from typing import Any

from ctxagent import provenance as _provenance


def stamp(allow_dirty: bool = False, argv: list[str] | None = None) -> dict[str, Any] | None:
    """The block for summary.json, taken at the start; raises DirtyTree on uncommitted changes unless allowed."""
    return _provenance.stamp(allow_dirty, argv) if _provenance.in_checkout() else None


def finish(block: dict[str, Any] | None) -> dict[str, Any] | None:
    return _provenance.finish(block) if block else block


def markdown_line(block: dict[str, Any] | None) -> str:
    if not block:
        return "Provenance: none recorded (not run from a ctxagent source checkout)."
    return _provenance.markdown_line(block)
