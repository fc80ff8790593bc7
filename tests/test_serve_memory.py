"""The server's native memory stays bounded: memory that malloc holds free after a request
goes back to the system (ctxagent/server/memory.py).

Real glibc, real allocations: a worker thread allocates and frees many blocks small enough
to come from its malloc arena (not mmapped), as torch's activations and tokenizer buffers
do in a request. glibc keeps those pages; a trim must give them back.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from ctxagent.server import memory

pytestmark = pytest.mark.skipif(memory.heap_stats() == {}, reason="needs glibc's malloc (mallinfo2, malloc_trim)")

BLOCK = 64 * 1024  # under glibc's mmap threshold: served from an arena, kept there when freed
BLOCKS = 3000  # ~190 MiB


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def _churn(pin: list) -> None:
    """What a request leaves behind: many freed blocks, and one small live one above them
    (so the heap's top cannot shrink by itself)."""
    blocks = [bytearray(b"x" * BLOCK) for _ in range(BLOCKS)]
    pin.append(bytearray(2000))  # over 512 bytes: from malloc, not from Python's small-object pools
    del blocks


def test_a_trim_gives_back_what_a_request_freed():
    pin: list = []
    worker = threading.Thread(target=_churn, args=(pin,))
    worker.start()
    worker.join()
    kept = memory.heap_stats()["free_kept"]
    assert kept > 100, f"glibc kept only {kept} MiB free: the test's premise failed"
    before = _rss_mib()
    trimmer = memory.Trimmer(every=60.0)
    assert trimmer.after_request() is True
    assert before - _rss_mib() > 100  # at least ~100 of the ~190 MiB freed went back
    assert trimmer.after_request() is False and trimmer.trims == 1  # at most once every `every` seconds


def test_a_server_that_falls_idle_trims_at_once():
    trimmer = memory.Trimmer(every=3600.0)
    assert trimmer.after_request() is True
    assert trimmer.after_request() is False  # busy: not again within the hour
    assert trimmer.after_request(idle=True) is True and trimmer.trims == 2


def test_trimming_off_never_trims():
    trimmer = memory.Trimmer(every=0)
    assert trimmer.after_request() is False and trimmer.trims == 0


def test_the_server_trims_after_requests_and_its_arenas_are_capped():
    from ctxagent.server import ServerSettings, running_server
    from tests.fakes import ScriptedEngine

    pytest.importorskip("fastapi")
    with running_server(ScriptedEngine(), ServerSettings(trim_seconds=3600)) as server:
        body = {"model": "ctxagent/direct", "messages": [{"role": "system", "content": "The ferry leaves at seven."}, {"role": "user", "content": "When?"}]}
        with httpx.Client(timeout=60) as client:
            for _ in range(3):
                assert client.post(server.base_url + "/chat/completions", json=body).status_code == 200
        assert server.state.trimmer.trims == 3  # one request at a time: each left the server idle


_THREADS = """
import sys, threading
from ctxagent.server import memory
if sys.argv[1] == "capped":
    assert memory.cap_arenas(2)
def work():
    blocks = [bytearray(1000) for _ in range(1000)]
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(memory.arenas())
"""


@pytest.mark.parametrize("mode", ["capped", "default"])
def test_arenas_are_capped_before_the_workers_start(mode):
    """Each new thread gets an arena of its own up to glibc's limit (8 per core); capped, 8 threads share 2."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", _THREADS, mode], capture_output=True, text=True, env=env, check=True)
    arenas = int(out.stdout.split()[-1])
    assert arenas <= 2 if mode == "capped" else arenas > 2
