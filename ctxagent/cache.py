"""Where ctxagent keeps what it builds: converted model weights, indexes, summary trees."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """`$CTXAGENT_CACHE` (default `~/.cache/ctxagent`) joined with `parts`, created on demand."""
    root = Path(os.environ.get("CTXAGENT_CACHE") or Path.home() / ".cache" / "ctxagent")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
