"""The server's native memory stays bounded: memory that malloc holds free after a request
goes back to the system (ctxagent/server/memory.py).

Real glibc, real allocations: a worker thread allocates and frees many blocks small enough
to come from its malloc arena (not mmapped), as torch's activations and tokenizer buffers
do in a request. glibc keeps those pages; a trim must give them back.
"""

from __future__ import annotations


import httpx
import pytest

from ctxagent.server import memory

pytestmark = pytest.mark.skipif(memory.heap_stats() == {}, reason="needs glibc's malloc (mallinfo2, malloc_trim)")

# In a fresh process: a server made earlier in the test process caps its arenas for good.
_CHURN = """
import threading
from ctxagent.server import memory

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))

def churn(pin):
    # What a request leaves behind: many freed blocks under glibc's mmap threshold (so from the
    # thread's arena), and one live block over 512 bytes (malloc's, not Python's pools) above them.
    blocks = [bytearray(b"x" * 65536) for _ in range(3000)]
    pin.append(bytearray(2000))
    del blocks

pin = []
worker = threading.Thread(target=churn, args=(pin,))
worker.start()
worker.join()
kept, before = memory.heap_stats()["free_kept"], rss()
trimmer = memory.Trimmer(every=60.0)
first, second = trimmer.after_request(), trimmer.after_request()
print(kept, before - rss(), first, second, trimmer.trims)
"""


def _python(script: str, *args: str) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=True).stdout.split()


def test_a_trim_gives_back_what_a_request_freed():
    kept, returned, first, second, trims = _python(_CHURN)
    assert float(kept) > 100, f"glibc kept only {kept} MiB free: the test's premise failed"
    assert first == "True" and float(returned) > 100  # at least ~100 of the ~190 MiB freed went back
    assert second == "False" and trims == "1"  # at most once every `every` seconds


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
together = threading.Barrier(8)
def work():
    blocks = [bytearray(1000) for _ in range(1000)]
    together.wait()  # all alive at once: none reuses the arena of a thread that ended
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(memory.arenas())
"""


@pytest.mark.parametrize("mode", ["capped", "default"])
def test_arenas_are_capped_before_the_workers_start(mode):
    """Each new thread gets an arena of its own up to glibc's limit (8 per core); capped, 8 threads share 2."""
    arenas = int(_python(_THREADS, mode)[-1])
    assert arenas <= 2 if mode == "capped" else arenas > 2
