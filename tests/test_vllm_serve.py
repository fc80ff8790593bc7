"""The `openai` engine against a real `vllm serve` process that the test starts and stops.
Skipped where vLLM is not installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctxagent.engines import get_engine

REPORT = Path(__file__).resolve().parent.parent / "examples" / "data" / "report.md"
START_TIMEOUT = float(os.environ.get("CTXAGENT_VLLM_SERVE_TIMEOUT", "600"))


@pytest.fixture(scope="module")
def vllm_server():
    from tests.vllm_serve_support import launch

    server = launch()  # started at collection already when this test was collected (tests/conftest.py)
    try:
        yield server.wait_ready(START_TIMEOUT)
    finally:
        server.stop()


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
