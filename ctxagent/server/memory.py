"""The C allocator's side of a long-lived server: what glibc's malloc holds, and keeping it bounded.

Why this exists: a server runs each request in one of `--max-concurrent` worker threads, and
the batcher runs each merged engine call in whichever worker leads it, so every worker
allocates large short-lived native buffers (torch activations over padded batches of long
prompts, tokenizer output). glibc gives each new thread an arena of its own (up to 8 per
core), and memory freed inside an arena is kept for reuse, not given back to the system. The
kept memory rises with each new batch shape, in every arena: resident memory climbs long after
the Python objects are gone (benchmarks/serve_memory_probe.py measured Python objects flat and
glibc holding ~490 MiB free in 13 arenas, 27% of the process, at 8 clients).

Two bounds, both explicit: `cap_arenas` (at most ARENA_MAX arenas, unless the operator set
MALLOC_ARENA_MAX), and `Trimmer`, which calls `malloc_trim(0)` after a request, at most once
every `--trim-seconds` (and whenever the server falls idle), so the free pages inside every
arena go back to the system.

Off glibc (musl, macOS) every function here does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
import tempfile
import threading
import time
from functools import lru_cache
from typing import Any

from ctxagent import envs

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers (malloc.h).
M_ARENA_MAX = -8
# Arenas a server process may have (glibc's default is 8 per core: 16 on two cores, 128 on
# sixteen). Worker threads share these; each arena keeps its own high-water mark of memory.
ARENA_MAX = 4
# Seconds between two trims: a trim walks every arena under its lock (milliseconds), so a busy
# server trims after a request at most this often.
TRIM_EVERY = 5.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@lru_cache(maxsize=1)
def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):  # not glibc, or older than 2.33 (mallinfo2)
        return None


def heap_stats() -> dict[str, float]:
    """MiB that malloc hands out (`in_use`), keeps free without returning (`free_kept`), and maps directly (`mmapped`)."""
    libc = _libc()
    if libc is None:
        return {}
    info = libc.mallinfo2()
    mib = 2**20
    return {"in_use": round(info.uordblks / mib, 1), "free_kept": round(info.fordblks / mib, 1), "mmapped": round(info.hblkhd / mib, 1)}


def arenas() -> int:
    """How many malloc arenas the process has (from malloc_info's XML); 0 off glibc."""
    libc = _libc()
    if libc is None:
        return 0
    with tempfile.NamedTemporaryFile("r", suffix=".xml") as f:
        fp = libc.fopen(f.name.encode(), b"w")
        if not fp:
            return 0
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        return len(re.findall(r'<heap nr="\d+">', f.read()))


def cap_arenas(limit: int = ARENA_MAX) -> bool:
    """Allow at most `limit` malloc arenas from now on, unless MALLOC_ARENA_MAX was set (the
    operator's choice wins). Takes effect for arenas made later: call it before the worker
    threads start. True if the cap was set."""
    libc = _libc()
    if libc is None or envs.get("MALLOC_ARENA_MAX") or "arena_max" in (envs.get("GLIBC_TUNABLES") or ""):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, limit))


class Trimmer:
    """Gives memory that malloc holds free back to the system (`malloc_trim(0)`: the free
    pages inside every arena, not only at a heap's top), at most once every `every` seconds.

    Called by a worker thread after each request: that is when a request's buffers were freed."""

    def __init__(self, every: float = TRIM_EVERY) -> None:
        self.every = every
        self.trims = 0
        self._last = float("-inf")
        self._lock = threading.Lock()

    def after_request(self, idle: bool = False) -> bool:
        """Trim if `every` seconds passed since the last trim, or at once if `idle` (no other
        request is being worked on, so the trim delays nobody); True if this call trimmed."""
        libc = _libc()
        if libc is None or self.every <= 0:
            return False
        now = time.monotonic()
        if (now - self._last < self.every and not idle) or not self._lock.acquire(blocking=False):
            return False
        try:
            self._last = now
            libc.malloc_trim(0)
            self.trims += 1
            return True
        finally:
            self._lock.release()
