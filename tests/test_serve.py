"""`ctxagent serve` end to end: the real CLI in a subprocess on 127.0.0.1, the real embedded model
(window capped at 1024 tokens), the official `openai` client and LangChain's ChatOpenAI.

A long inline document (real public-domain text about 3x the window, a fact placed in it) is
answered non-streamed and streamed through both clients, with the fact and its citation; then the
error statuses, 32 concurrent requests, and a graceful shutdown with a request in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.texts import text_with_fact

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key-not-secret"
WINDOW = 1024
FACT = "The secret code to open the blue vault is 4817."
QUESTION = "What is the secret code to open the blue vault?"
LONG_RECIPE = "ctxagent/retrieve_then_reason"
# BM25 and two chunks read keep each long request to three short engine calls on a CPU.
FAST = {"recipe_options": {"retriever": "bm25", "k": 2}}


@pytest.fixture(scope="module")
def long_document(engine) -> str:
    """Real text about 3x the capped window, the fact at 60% depth."""
    return text_with_fact(FACT, engine.count_tokens, 3 * WINDOW)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`ctxagent serve` on a free loopback port; stopped with SIGTERM by the last test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CTXAGENT_API_KEY": KEY}
    command = [sys.executable, "-m", "ctxagent.cli", "serve", "--port", "0", "--context-window", str(WINDOW),
               "--max-body-bytes", "200000", "--max-new-tokens", "48"]
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w")  # the server's stderr, for a failing test's reader
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()  # "ctxagent serve: <model> and its recipes at http://127.0.0.1:PORT/v1"
    assert " at http://127.0.0.1:" in line, line
    base_url = line.rsplit(" at ", 1)[1].strip()
    yield process, base_url
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[1], api_key=KEY, max_retries=0, timeout=300)


def _check_fact(text: str, citations: list[dict], document: str) -> None:
    assert "4817" in text, text
    assert citations and any("4817" in c["quote"] for c in citations), citations
    assert all(document[c["start"] : c["end"]] == c["quote"] for c in citations)


def test_health_and_models(server, client):
    health = httpx.get(server[1].removesuffix("/v1") + "/health").json()
    assert health["status"] == "ok"
    ids = [m.id for m in client.models.list().data]
    assert health["model"] in ids
    assert {"ctxagent/auto", "ctxagent/retrieve_then_reason", "ctxagent/map_reduce", "ctxagent/direct"} <= set(ids)


def test_openai_client_answers_a_long_document_with_its_citation(client, long_document):
    response = client.chat.completions.create(
        model=LONG_RECIPE, messages=[{"role": "system", "content": long_document}, {"role": "user", "content": QUESTION}], extra_body=FAST
    )
    extra = response.model_extra["ctxagent"]
    _check_fact(response.choices[0].message.content, extra["citations"], long_document)
    assert extra["recipe"] == "retrieve_then_reason" and extra["split"] == "earlier messages"
    assert extra["basis"] in ("stated", "computed", "quote")
    assert response.usage.prompt_tokens > 0 and extra["usage"]["engine_calls"] >= 2


def test_openai_client_streams_the_checked_answer_then_the_citations(client, long_document):
    stream = client.chat.completions.create(
        model=LONG_RECIPE,
        messages=[{"role": "user", "content": f"<document>{long_document}</document>\n{QUESTION}"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body=FAST,
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    progress = [c.model_extra["ctxagent"]["event"]["type"] for c in chunks if (c.model_extra or {}).get("ctxagent", {}).get("event")]
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert "step" in progress, progress  # the recipe's steps arrived while it worked
    _check_fact(content, final.model_extra["ctxagent"]["citations"], long_document)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_langchain_chat_openai_streamed_and_not(server, long_document):
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(
        model=LONG_RECIPE, base_url=server[1], api_key=KEY, max_retries=0, timeout=300,
        extra_body={"citations": "inline", **FAST},  # LangChain keeps only the content, so the citations go in it
    )
    messages = [("system", long_document), ("human", QUESTION)]
    reply = chat.invoke(messages)
    assert "4817" in reply.content and '"The secret code to open the blue vault is 4817."' in reply.content, reply.content
    streamed = "".join(str(chunk.content) for chunk in chat.stream(messages))
    assert streamed == reply.content  # greedy decoding: the same answer either way


def test_error_statuses_in_openai_shape(server, client):
    with pytest.raises(openai.AuthenticationError) as wrong_key:
        openai.OpenAI(base_url=server[1], api_key="wrong", max_retries=0).models.list()
    assert wrong_key.value.status_code == 401 and wrong_key.value.body["code"] == "invalid_api_key"
    missing = httpx.get(server[1] + "/models")
    assert missing.status_code == 401 and "API key" in missing.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="ctxagent/nope", messages=[{"role": "user", "content": "Hi?"}])
    assert "ctxagent/nope" in unknown.value.body["message"]
    with pytest.raises(openai.BadRequestError) as malformed:
        client.chat.completions.create(model="ctxagent/auto", messages=[{"role": "user", "content": "x"}], temperature=7)
    assert "temperature" in malformed.value.body["message"]
    with pytest.raises(openai.BadRequestError) as no_document:
        client.chat.completions.create(model="ctxagent/auto", messages=[{"role": "user", "content": "What is it?"}])
    assert "no document text" in no_document.value.body["message"]
    with pytest.raises(openai.APIStatusError) as too_large:
        client.chat.completions.create(model="ctxagent/auto", messages=[{"role": "user", "content": "word " * 50_000 + "\nWhy?"}])
    assert too_large.value.status_code == 413 and "200000 bytes" in too_large.value.body["message"]


def test_32_concurrent_requests_are_all_answered_and_none_mixed_up(client):
    codes = {n: f"{(n * 7919) % 9000 + 1000}" for n in range(32)}

    def ask(n: int):
        doc = f"Locker {n} is on floor {n % 5 + 1}. The code of locker {n} is {codes[n]}. Keep it safe."
        response = client.chat.completions.create(
            model="ctxagent/direct", messages=[{"role": "system", "content": doc}, {"role": "user", "content": f"What is the code of locker {n}?"}]
        )
        return n, doc, response

    began = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(ask, range(32)))
    seconds = time.perf_counter() - began
    assert len(results) == 32 and seconds < 240, seconds
    right = 0
    for n, doc, response in results:
        text = response.choices[0].message.content
        others = [code for m, code in codes.items() if m != n]
        assert not any(code in text for code in others), (n, text)  # nobody got another's answer
        assert all(doc[c["start"] : c["end"]] == c["quote"] for c in response.model_extra["ctxagent"]["citations"])
        right += codes[n] in text
    assert right >= 28, right


def test_graceful_shutdown_finishes_the_request_in_flight(server, client):
    process, _ = server
    outcome: dict[str, object] = {}

    def ask() -> None:
        try:
            response = client.chat.completions.create(
                model="ctxagent/direct",
                messages=[{"role": "system", "content": "The ferry leaves at seven."}, {"role": "user", "content": "When does the ferry leave?"}],
            )
            outcome["text"] = response.choices[0].message.content
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    health = server[1].removesuffix("/v1") + "/health"
    thread = threading.Thread(target=ask)
    thread.start()
    deadline = time.monotonic() + 60
    while httpx.get(health).json()["in_flight"] == 0:  # wait until the request is being worked on
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    thread.join(timeout=120)
    # uvicorn re-raises the signal once it has shut down gracefully, so the exit status is SIGTERM's.
    assert process.wait(timeout=120) in (0, -signal.SIGTERM)
    assert "error" not in outcome and "seven" in str(outcome.get("text", "")).lower(), outcome
