"""`ctxagent serve` as it lives: several keys and a per-key limit (429), `/metrics` parsed with
prometheus-client's own parser, bounded memory, and cancellation.

Keys, limits, metrics and the bounded request log are control flow, tested with the scripted
engine (tests/fakes.py). Cancellation is tested with the real embedded model: its rows stop
between generated tokens, and 8 streams closed after their first event get no further
engine calls while the next request starts at once.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytest.importorskip("fastapi")
prometheus = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from ctxagent.server import ServerSettings, running_server  # noqa: E402
from ctxagent.server.keys import key_id  # noqa: E402
from tests.fakes import ScriptedEngine  # noqa: E402

KEY_A = "sk-alpha-not-secret-1111"
KEY_B = "sk-bravo-not-secret-2222"
DOC = "The ferry to the island leaves at seven in the morning."


def _chat(model: str = "ctxagent/direct", stream: bool = False) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "system", "content": DOC}, {"role": "user", "content": "When does the ferry leave?"}]}


def _families(base_url: str) -> dict:
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics").text
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict, family: str, sample: str, **labels: str) -> float:
    return sum(s.value for s in families[family].samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


class _Capture(logging.Handler):
    """Every record at `level` or above, from the root logger and uvicorn's (which does not propagate)."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "_Capture":
        for name in ("", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in ("", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).removeHandler(self)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


def test_several_keys_from_flags_and_a_file_each_counted_by_id_never_by_key(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# team keys\nbravo-team: {KEY_B}\n")
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with _Capture() as captured, running_server(ScriptedEngine(lambda p: "At seven."), ServerSettings(api_keys=[KEY_A], keys_file=str(keys_file))) as server:
            for key in (KEY_A, KEY_B):
                response = httpx.post(server.base_url + "/chat/completions", json=_chat(), headers={"Authorization": f"Bearer {key}"}, timeout=30)
                assert response.status_code == 200, response.text
            wrong = httpx.post(server.base_url + "/chat/completions", json=_chat(), headers={"Authorization": f"Bearer {KEY_A}x"}, timeout=30)
            assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
            assert httpx.get(server.base_url + "/models").status_code == 401
            metrics_text = httpx.get(server.base_url.removesuffix("/v1") + "/metrics").text
            families = _families(server.base_url)
    finally:
        root.setLevel(old_level)
    ok = dict(route="/v1/chat/completions", status="200")
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", key_id=key_id(KEY_A), **ok) == 1
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", key_id="bravo-team", **ok) == 1
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", status="401") == 2
    assert _value(families, "ctxagent_prompt_tokens", "ctxagent_prompt_tokens_total", key_id="bravo-team") > 0
    for key in (KEY_A, KEY_B):
        assert key not in metrics_text and key not in captured.text() and key[:12] not in captured.text()


def test_a_key_at_its_limit_gets_429_with_retry_after_and_other_keys_go_on():
    release = threading.Event()

    class Held(ScriptedEngine):
        def generate(self, prompts, params=None):
            release.wait(30)
            return super().generate(prompts, params)

    settings = ServerSettings(api_keys=[KEY_A, KEY_B], max_per_key=1)
    with running_server(Held(lambda p: "At seven."), settings) as server:
        url = server.base_url + "/chat/completions"
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, url, json=_chat(), headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60)
            deadline = time.monotonic() + 30
            while server.state.in_flight == 0:  # the first request holds key A's one slot
                assert time.monotonic() < deadline
                time.sleep(0.01)
            refused = httpx.post(url, json=_chat(), headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30)
            other = pool.submit(httpx.post, url, json=_chat(), headers={"Authorization": f"Bearer {KEY_B}"}, timeout=60)
            time.sleep(0.2)
            release.set()
            assert first.result().status_code == 200 and other.result().status_code == 200
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and set(error) == {"message", "type", "param", "code"}
        assert KEY_A not in error["message"] and key_id(KEY_A) in error["message"]
        again = httpx.post(url, json=_chat(), headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30)
        assert again.status_code == 200  # the slot came back
        families = _families(server.base_url)
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", status="429", key_id=key_id(KEY_A)) == 1


def test_metrics_parse_and_count_routes_statuses_histograms_tokens():
    with running_server(ScriptedEngine(lambda p: "At seven."), ServerSettings(max_body_bytes=5000)) as server:
        base = server.base_url
        assert httpx.post(base + "/chat/completions", json=_chat(), timeout=30).status_code == 200
        with httpx.stream("POST", base + "/chat/completions", json=_chat(stream=True), timeout=30) as r:
            assert r.status_code == 200 and [line for line in r.iter_lines() if line][-1] == "data: [DONE]"
        assert httpx.post(base + "/chat/completions", json={"model": "ctxagent/direct"}, timeout=30).status_code == 400
        assert httpx.post(base + "/chat/completions", content=b"x" * 6000, timeout=30).status_code == 413
        assert httpx.get(base + "/no/such/path").status_code == 404
        response = httpx.get(base.removesuffix("/v1") + "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert response.headers["content-type"].startswith("text/plain")
    chat = "/v1/chat/completions"
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", route=chat, status="200") == 2
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", route=chat, status="400") == 1
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", route=chat, status="413") == 1
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", route="other", status="404") == 1
    assert families["ctxagent_request_seconds"].type == "histogram"
    assert _value(families, "ctxagent_request_seconds", "ctxagent_request_seconds_count", route=chat) == 4
    assert _value(families, "ctxagent_queue_wait_seconds", "ctxagent_queue_wait_seconds_count") == 2
    assert _value(families, "ctxagent_time_to_first_event_seconds", "ctxagent_time_to_first_event_seconds_count") == 1
    assert _value(families, "ctxagent_prompt_tokens", "ctxagent_prompt_tokens_total") > 0
    assert _value(families, "ctxagent_completion_tokens", "ctxagent_completion_tokens_total") > 0
    assert _value(families, "ctxagent_engine_calls", "ctxagent_engine_calls_total") >= 2
    assert _value(families, "ctxagent_requests_in_flight", "ctxagent_requests_in_flight") == 1  # the scrape itself
    assert _value(families, "ctxagent_cancellations", "ctxagent_cancellations_total") == 0


def test_the_request_log_is_bounded():
    with running_server(ScriptedEngine(), ServerSettings()) as server:
        health = server.base_url.removesuffix("/v1") + "/health"
        with httpx.Client() as client:
            for _ in range(300):
                client.get(health)
        assert server.state.seen == 300 and len(server.state.recent) == server.state.recent.maxlen < 300
        assert len(server.state.batcher.batch_sizes) <= server.state.batcher.batch_sizes.maxlen


def test_a_client_that_leaves_a_non_streamed_request_or_a_timeout_cancels_its_run():
    """Control flow: the scripted engine holds its first call; the run's token is cancelled when the
    client's connection closes (a non-streamed request) or the request times out, and counted."""
    release = threading.Event()
    calls: list[float] = []

    class Held(ScriptedEngine):
        def generate(self, prompts, params=None):
            calls.append(time.monotonic())
            release.wait(30)
            return super().generate(prompts, params)

    with running_server(Held(lambda p: "At seven."), ServerSettings(request_timeout=2.0)) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.base_url + "/chat/completions", json=_chat(), timeout=0.5)  # the client gives up and closes
        deadline = time.monotonic() + 10
        while _value(_families(server.base_url), "ctxagent_cancellations", "ctxagent_cancellations_total", reason="disconnect") < 1:
            assert time.monotonic() < deadline, "the disconnect was not noticed"
            time.sleep(0.05)
        timed_out = httpx.post(server.base_url + "/chat/completions", json=_chat(), timeout=30)
        release.set()
        families = _families(server.base_url)
    assert timed_out.status_code == 504
    assert _value(families, "ctxagent_cancellations", "ctxagent_cancellations_total", reason="timeout") == 1
    assert _value(families, "ctxagent_requests", "ctxagent_requests_total", route="/v1/chat/completions", status="499") == 1


# -- cancellation, with the real model ----------------------------------------------------------
def test_a_row_stops_between_tokens_while_its_batch_goes_on(engine_2k):
    from ctxagent.engines.base import STOPPED, SamplingParams

    params = SamplingParams(max_new_tokens=40)
    prompts = ["Write a long story about a lighthouse keeper.", "List the days of the week."]
    [alone] = engine_2k.generate([prompts[1]], params)
    seen = {"calls": 0}

    def stop_soon() -> bool:
        seen["calls"] += 1
        return seen["calls"] > 3

    cut, kept = engine_2k.generate(prompts, params, stop_when=[stop_soon, None])
    assert cut.finish_reason == STOPPED and cut.completion_tokens <= 5
    assert kept.text == alone.text and kept.finish_reason == alone.finish_reason


class Recorder:
    """Passes calls to the real engine and records, per call, each prompt's request marker and
    whether that request had already asked to stop (which must never be the case)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.model_name, self.streams, self.stops_rows = inner.name, inner.model_name, True, True
        self.calls: list[tuple[float, list[str], list[bool]]] = []

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def _markers(self, texts) -> list[str]:
        import re

        return [m.group() if (m := re.search(r"Ledger-\d+", str(t))) else "" for t in texts]

    def generate(self, prompts, params=None, *, stream_to=None, stop_when=None):
        checks = list(stop_when or [None] * len(prompts))
        texts = [p if isinstance(p, str) else " ".join(m.content for m in p) for p in prompts]
        self.calls.append((time.monotonic(), self._markers(texts), [bool(c and c()) for c in checks]))
        return self.inner.generate(prompts, params, stream_to=stream_to, stop_when=stop_when)

    def score(self, texts, contexts=None):
        from ctxagent.cancel import current_stop

        stop = current_stop()
        self.calls.append((time.monotonic(), self._markers(texts), [bool(stop and stop())] * len(texts)))
        return self.inner.score(texts, contexts)


@pytest.mark.slow
def test_closed_streams_get_no_further_engine_calls_and_free_their_workers(engine_2k):
    from tests.texts import text_with_fact

    docs = [text_with_fact(f"Ledger-{n} records that the vault code is {4000 + n}.", engine_2k.count_tokens, 3 * 2048, depth=0.1 + n / 10) for n in range(8)]
    recorder = Recorder(engine_2k)
    settings = ServerSettings(max_concurrent=8, batch_wait=0.05)
    with _Capture(logging.ERROR) as errors, running_server(recorder, settings) as server:
        url = server.base_url + "/chat/completions"
        health = server.base_url.removesuffix("/v1") + "/health"

        def open_and_close(n: int) -> float:
            body = {"model": "ctxagent/memory_tree", "stream": True, "recipe_options": {"cache": False},
                    "messages": [{"role": "system", "content": docs[n]}, {"role": "user", "content": f"What is the vault code in Ledger-{n}?"}]}
            with httpx.stream("POST", url, json=body, timeout=120) as response:
                for line in response.iter_lines():
                    if '"event"' in line:  # the first progress event: the client leaves
                        break
            return time.monotonic()

        with ThreadPoolExecutor(8) as pool:
            closed = max(pool.map(open_and_close, range(8)))
        deadline = time.monotonic() + 60
        while httpx.get(health).json()["in_flight"] > 0:  # the workers come free
            assert time.monotonic() < deadline, "cancelled requests kept their workers"
            time.sleep(0.05)
        freed = time.monotonic() - closed
        began = time.monotonic()
        body = {"model": "ctxagent/direct", "stream": True, "messages": [{"role": "system", "content": DOC}, {"role": "user", "content": "When does the ferry leave?"}]}
        with httpx.stream("POST", url, json=body, timeout=120) as response:
            lines = list(response.iter_lines())
            first_event = next(i for i, line in enumerate(lines) if '"event"' in line)
        next_started = time.monotonic() - began
        calls_after = len(recorder.calls)
        time.sleep(1.0)
        families = _families(server.base_url)
    assert "seven" in "".join(lines).lower() and first_event >= 1
    assert not [c for c in recorder.calls if any(c[2])], "an engine call was made for a request that had asked to stop"
    assert all(not any(c[1]) for c in recorder.calls[calls_after - 1 :] if c[0] > began), "a cancelled request's prompt reached the engine after the next request began"
    assert _value(families, "ctxagent_cancellations", "ctxagent_cancellations_total", reason="disconnect") == 8
    assert freed < 30 and next_started < 30, (freed, next_started)
    assert not errors.records, errors.text()
