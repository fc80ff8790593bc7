"""Matplotlib for the benchmarks' plots: headless (Agg), or None where it is not installed
(the lent GPU machine has none), so that a benchmark still writes its tables there."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
