"""Where ctxagent keeps what it builds: converted model weights, indexes, summary trees."""

from __future__ import annotations

from pathlib import Path

from ctxagent import envs


def cache_dir(*parts: str) -> Path:
    """`$CTXAGENT_CACHE` (default `~/.cache/ctxagent`) joined with `parts`, created on demand."""
    root = envs.cache_root()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
