"""The `openai` engine over real HTTP.

End to end: a real OpenAI-compatible server (`ctxagent serve`'s app, ctxagent.server) serves
the real embedded SmolLM2 engine, and the openai engine answers the bundled example through it.
Control flow (retries, timeouts, key handling, unsupported endpoints): small scripted HTTP
servers on 127.0.0.1, because those failures cannot be provoked on demand from a real model.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from ctxagent import ContextAgent
from ctxagent.engines import SamplingParams, get_engine
from ctxagent.server import running_server
from ctxagent.errors import EngineError, InputError

REPORT = Path(__file__).resolve().parent.parent / "examples" / "data" / "report.md"
MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": 4096}]}
CHAT_OK = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": " hi "}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1},
}


# -- the real model behind HTTP ---------------------------------------------------------------
@pytest.fixture(scope="module")
def served(engine):
    with running_server(engine) as server:
        client = get_engine("openai", base_url=server.base_url, max_retries=0)
        yield server.state, client
        client.close()


def test_bundled_example_is_answered_through_http(served, engine):
    server, client = served
    answer = ContextAgent(engine=client).ask(REPORT, "What was the third-quarter revenue?")
    assert "26.4" in answer.text
    assert answer.citations and "26.4 million euros" in answer.citations[0].quote
    source = REPORT.read_text()
    assert all(source[c.start : c.end] == c.quote for c in answer.citations)
    assert answer.usage.engine_calls == 1 and answer.usage.prompt_tokens > 300
    assert "/v1/chat/completions" in server.recent


def test_window_and_token_counts_come_from_the_server(served, engine):
    _, client = served
    assert client.context_window == engine.context_window
    assert client.model_name == engine.model_name
    for text in ["", "Third-quarter revenue reached 26.4 million euros.", "naïve café — ünïcödé"]:
        assert client.count_tokens(text) == engine.count_tokens(text)


def test_score_matches_the_model_in_process(served, engine):
    _, client = served
    text = "The vault code is 7319."
    [remote] = client.score([text], ["Remember this: "])
    [local] = engine.score(["Remember this: " + text])
    # The same tokens of the same joined prompt, scored by the same model; a token that straddles
    # the join (" The") belongs to the text, its span clipped to the text.
    n = len("Remember this: ")
    mine = [(max(0, a - n), b - n, lp) for (a, b), lp in zip(local.offsets, local.logprobs) if b > n]
    assert remote.offsets == [(a, b) for a, b, _ in mine]
    assert remote.logprobs == pytest.approx([lp for _, _, lp in mine], abs=1e-3)
    assert "".join(text[a:b] for a, b in remote.offsets) == text


def test_a_batch_goes_out_concurrently_and_is_batched_by_the_server(served):
    server, client = served
    before = len(server.batcher.batch_sizes)
    prompts = [f"Repeat the number {n}." for n in range(4)]
    completions = client.generate(prompts, SamplingParams(max_new_tokens=4))
    assert len(completions) == 4 and all(c.prompt_tokens > 5 and c.completion_tokens >= 1 for c in completions)
    assert max(list(server.batcher.batch_sizes)[before:]) > 1, "concurrent requests should share an engine call"


def test_a_streamed_completion_arrives_in_pieces_and_matches_the_whole(served):
    _, client = served
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    pieces: list[str] = []
    [streamed] = client.generate(["Name three colours."], params, stream_to=[pieces.append])
    [whole] = client.generate(["Name three colours."], params)
    assert len(pieces) > 1 and "".join(pieces).strip() == streamed.text == whole.text
    assert streamed.prompt_tokens == whole.prompt_tokens and streamed.completion_tokens == whole.completion_tokens


# -- scripted servers for failures ------------------------------------------------------------
Route = Callable[[str, dict[str, Any], dict[str, str]], tuple[int, dict[str, Any], dict[str, str]]]


class Scripted:
    """A real HTTP server on 127.0.0.1 whose answers come from `route(path, body, headers)`."""

    def __init__(self, route: Route) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: dict[str, Any]) -> None:
                headers = dict(self.headers.items())
                outer.calls.append((self.path, body, headers))
                status, payload, extra = route(self.path, body, headers)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **extra}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the timeout tests): nothing to answer

            def do_GET(self) -> None:  # noqa: N802
                self._answer({})

            def do_POST(self) -> None:  # noqa: N802
                self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)) or b"{}"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def count(self, path: str) -> int:
        return sum(1 for p, _, _ in self.calls if p == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted():
    servers: list[Scripted] = []

    def make(route: Route) -> Scripted:
        servers.append(Scripted(route))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _routes(**by_path: Any) -> Route:
    """Map path -> (status, body[, headers]) or a list of those served in turn (the last repeats)."""
    turns: dict[str, int] = {}

    def route(path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        answer = by_path.get(path.strip("/").replace("/", "_"), (404, {"error": {"message": "no route"}}))
        if callable(answer):
            answer = answer(body, headers)
        if isinstance(answer, list):
            k = turns.get(path, 0)
            turns[path] = k + 1
            answer = answer[min(k, len(answer) - 1)]
        status, payload, *rest = answer
        return status, payload, (rest[0] if rest else {})

    return route


def test_more_than_four_stop_strings_send_four_and_apply_the_rest_to_the_text(scripted):
    # The OpenAI API takes at most 4 stop strings (vLLM's server answers 400 past it); the answer
    # steps ask for 9 (ctxagent.scaffolding.ANSWER_STOPS).
    def chat(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if len(body.get("stop", [])) > 4:
            return 400, {"error": {"message": "stop: List should have at most 4 items"}}
        reply = {"role": "assistant", "content": "The code is 7319.\nContext: the vault"}
        return 200, {"choices": [{"index": 0, "message": reply, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 9}}

    server = scripted(_routes(v1_models=(200, MODELS), v1_chat_completions=chat))
    client = get_engine("openai", base_url=server.base_url, max_retries=0)
    stops = ["\nQuestion:", "\nFacts:", "\nDocument:", "\nText:", "\nContext:", "<|im_end|>"]
    [completion] = client.generate(["q"], SamplingParams(max_new_tokens=16, stop=stops))
    assert completion.text == "The code is 7319."
    [sent] = [body for path, body, _ in server.calls if path.endswith("/chat/completions")]
    assert sent["stop"] == stops[:4]


def test_5xx_and_429_are_retried_with_backoff_then_succeed(scripted):
    server = scripted(
        _routes(
            v1_models=(200, MODELS),
            v1_chat_completions=[(503, {"error": {"message": "warming up"}}), (429, {}, {"Retry-After": "0.2"}), (200, CHAT_OK)],
        )
    )
    client = get_engine("openai", base_url=server.base_url, backoff=0.01, max_retries=3)
    started = time.perf_counter()
    [completion] = client.generate(["hello"])
    assert completion.text == "hi" and completion.prompt_tokens == 5
    assert server.count("/v1/chat/completions") == 3
    assert time.perf_counter() - started >= 0.2, "Retry-After must be honoured"


def test_client_errors_are_not_retried_and_carry_the_server_message(scripted):
    server = scripted(_routes(v1_models=(200, MODELS), v1_chat_completions=(400, {"error": {"message": "max_tokens is too large"}})))
    client = get_engine("openai", base_url=server.base_url, backoff=0.01)
    with pytest.raises(EngineError, match="400: max_tokens is too large"):
        client.generate(["hello"])
    assert server.count("/v1/chat/completions") == 1


def test_retries_give_up_with_a_clear_error(scripted):
    server = scripted(_routes(v1_models=(200, MODELS), v1_chat_completions=(502, {"error": {"message": "bad gateway"}})))
    client = get_engine("openai", base_url=server.base_url, backoff=0.001, max_retries=2)
    with pytest.raises(EngineError, match="failed after 3 attempts.*bad gateway"):
        client.generate(["hello"])
    assert server.count("/v1/chat/completions") == 3


def test_unreachable_server_is_retried_then_named():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineError, match=rf"127.0.0.1:{port}/v1/models failed after 2 attempts.*base_url="):
        get_engine("openai", base_url=f"http://127.0.0.1:{port}/v1", backoff=0.001, max_retries=1)


def test_a_slow_server_times_out_without_retrying(scripted):
    def slow(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        time.sleep(1.0)
        return 200, CHAT_OK

    server = scripted(_routes(v1_models=(200, MODELS), v1_chat_completions=slow))
    client = get_engine("openai", base_url=server.base_url, timeout=0.2, backoff=0.001)
    with pytest.raises(EngineError, match=r"no answer within 0.2 s.*raise timeout="):
        client.generate(["hello"])
    assert server.count("/v1/chat/completions") == 1


def test_api_key_is_sent_but_never_shown(scripted, monkeypatch, caplog):
    secret = "sk-test-DO-NOT-LEAK-1234567890"
    monkeypatch.setenv("MY_LLM_KEY", secret)

    def echo_auth(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # A careless server that echoes the credential back in its errors.
        return 503, {"error": {"message": f"overloaded for {headers.get('Authorization')}"}}

    server = scripted(_routes(v1_models=(200, MODELS), v1_chat_completions=echo_auth))
    client = get_engine("openai", base_url=server.base_url, api_key_env="MY_LLM_KEY", backoff=0.001, max_retries=1)
    assert server.calls[0][2]["Authorization"] == f"Bearer {secret}"
    assert secret not in repr(client) and "MY_LLM_KEY" in repr(client)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(EngineError) as info:
        client.generate(["hello"])
    assert "overloaded for Bearer ***" in str(info.value)
    assert secret not in str(info.value) and secret not in caplog.text
    assert "retry 1 of 1" in caplog.text


def test_rejected_key_says_which_variable_to_check(scripted, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    server = scripted(_routes(v1_models=(401, {"error": {"message": "invalid api key"}})))
    with pytest.raises(EngineError, match=r"401: invalid api key \(check the API key in \$OPENAI_API_KEY\)"):
        get_engine("openai", base_url=server.base_url)


def test_window_option_when_the_server_does_not_report_one(scripted):
    bare = {"object": "list", "data": [{"id": "gpt-x", "object": "model"}]}
    server = scripted(_routes(v1_models=(200, bare)))
    with pytest.raises(InputError, match="does not report max_model_len.*context_window="):
        get_engine("openai", base_url=server.base_url)
    assert get_engine("openai", base_url=server.base_url, context_window=8000).context_window == 8000
    with pytest.raises(InputError, match="'other' is not served.*gpt-x"):
        get_engine("openai", base_url=server.base_url, model="other", context_window=8000)
    # A reported window is capped by the option, never raised by it.
    server2 = scripted(_routes(v1_models=(200, MODELS)))
    assert get_engine("openai", base_url=server2.base_url, context_window=1024).context_window == 1024
    assert get_engine("openai", base_url=server2.base_url, context_window=99999).context_window == 4096


def test_without_tokenize_endpoint_counts_are_estimated_with_a_warning(scripted):
    server = scripted(_routes(v1_models=(200, MODELS)))
    client = get_engine("openai", base_url=server.base_url)
    with pytest.warns(UserWarning, match="estimated at 4 characters per token.*tokenizer="):
        assert client.count_tokens("x" * 40) == 10
    assert client.count_tokens("y" * 41) == 11
    assert server.count("/tokenize") == 1, "an absent endpoint is asked once"


def test_score_on_a_server_without_prompt_logprobs_is_a_clear_error(scripted):
    server = scripted(
        _routes(v1_models=(200, MODELS), v1_completions=(400, {"error": {"message": "echo is not supported"}}))
    )
    client = get_engine("openai", base_url=server.base_url)
    with pytest.raises(EngineError, match="cannot return prompt log-probs.*vllm serve"):
        client.score(["some text"])
    plain = {"choices": [{"index": 0, "text": "x", "logprobs": None, "finish_reason": "length"}]}
    server2 = scripted(_routes(v1_models=(200, MODELS), v1_completions=(200, plain)))
    with pytest.raises(EngineError, match="returned no prompt log-probs"):
        get_engine("openai", base_url=server2.base_url).score(["some text"])
