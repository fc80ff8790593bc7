"""`openai`: any OpenAI-compatible HTTP server (vLLM's `vllm serve`, llama.cpp, TGI, OpenAI itself).

The engine is a thin, careful client: one pooled httpx client with separate connect
and read timeouts; retries with exponential backoff (and the server's Retry-After)
on connection failures, 429 and 5xx, never on other 4xx, which retrying cannot fix;
a batch of prompts goes out as concurrent requests on a bounded thread pool so the
server can batch them (continuous batching is where vLLM's throughput comes from).

The API key is read from an environment variable at construction, sent only as the
Authorization header, and scrubbed from every error message; it never appears in
`repr`, logs or exceptions.

What the server is asked for, and what happens when it cannot answer:
- context window: `max_model_len` of the model in `GET /v1/models` (vLLM reports it),
  else the `context_window` option, else a clear error.
- token counts: a local tokenizer when the user names one (`tokenizer=`, exact and fast),
  else vLLM's `POST /tokenize`, else an estimate of 1 token per 4 characters (said in a warning).
- `score`: prompt log-probs through the completions API with `echo=True, logprobs=0`
  (vLLM and the legacy OpenAI completions API support it); a clear error otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import lru_cache
from typing import Any, Sequence

from ctxagent import envs
from ctxagent.engines import register
from ctxagent.engines.base import Completion, Prompt, SamplingParams, TextSink, TokenScores, render_messages
from ctxagent.engines.speed import ProbedSpeed
from ctxagent.errors import EngineError, EngineNotInstalled, InputError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CHARS_PER_TOKEN = 4  # the estimate used when neither a tokenizer nor /tokenize is available
MAX_SERVER_STOPS = 4  # the OpenAI API's limit on `stop`; vLLM's server answers 400 past it


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """`text` up to the earliest of `stops`, as a server would have stopped there."""
    ends = [i for i in (text.find(stop) for stop in stops) if i != -1]
    return text[: min(ends)] if ends else text


class ServerError(EngineError):
    """The server answered with an HTTP error status (kept in `status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _RetryableHTTPError(Exception):
    """A response worth retrying (429/5xx); carries the server's Retry-After, if any."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


@register("openai")
class OpenAIEngine(ProbedSpeed):
    """Client for an OpenAI-compatible server.

    base_url: the API root including `/v1` (default `$OPENAI_BASE_URL` or http://127.0.0.1:8000/v1).
    model: the served model id; None takes the first model the server lists.
    api_key_env: name of the environment variable holding the key (default OPENAI_API_KEY); no key is fine
        for local servers.
    context_window: used when the server does not report `max_model_len`; caps it when it does.
    tokenizer: a local tokenizer (path or hub id, loaded with transformers) for exact, fast counting.
    timeout / connect_timeout: seconds to wait for a response / for a connection.
    max_retries: attempts after the first on connection errors, 408, 429 and 5xx.
    max_concurrency: requests in flight at once for a batch.
    chat: use /v1/chat/completions (the server applies the model's chat template); False sends the
        prompt text to /v1/completions as is.
    """

    name = "openai"
    streams = True  # a prompt with a sink is asked with `stream: true` (chat API)

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        context_window: int | None = None,
        tokenizer: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        max_concurrency: int = 8,
        chat: bool = True,
        show_progress: bool | None = None,
    ) -> None:
        try:
            import httpx
            import tenacity  # noqa: F401
        except ImportError as exc:  # pragma: no cover - both are base dependencies
            raise EngineNotInstalled("the openai engine needs httpx and tenacity: `pip install ctxagent`") from exc
        if max_concurrency < 1:
            raise InputError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise InputError(f"max_retries must be 0 or more, got {max_retries}")
        self.base_url = (base_url or envs.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self._api_key = envs.get(api_key_env)
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.max_concurrency, self.chat, self.show_progress = max_concurrency, chat, show_progress
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_concurrency + 2, max_keepalive_connections=max_concurrency + 2),
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

        listed = self._models()
        ids = [m.get("id") for m in listed]
        if model is None:
            if not ids:
                raise EngineError(f"the server at {self.base_url} lists no models; pass model=...")
            model = str(ids[0])
        elif ids and model not in ids:
            raise InputError(f"model {model!r} is not served at {self.base_url}; it serves: {', '.join(map(str, ids))}")
        self.model = self.model_name = model
        served = next((m for m in listed if m.get("id") == model), {})
        server_window = served.get("max_model_len")
        if server_window and context_window:
            self._context_window = min(int(server_window), int(context_window))
        elif server_window or context_window:
            self._context_window = int(server_window or context_window)  # type: ignore[arg-type]
        else:
            raise InputError(
                f"the server at {self.base_url} does not report max_model_len for {model!r}: "
                "pass context_window=N (the model's context length in tokens)"
            )

        self._local_tokenizer = self._load_tokenizer(tokenizer) if tokenizer else None
        self._server_tokenize: bool | None = None if self._local_tokenizer is None else False
        self._count_cached = lru_cache(maxsize=4096)(self._count_uncached)

    # -- plumbing -------------------------------------------------------------------------
    def __repr__(self) -> str:
        key = f"${self.api_key_env} set" if self._api_key else "no key"
        return f"OpenAIEngine(model={self.model_name!r}, base_url={self.base_url!r}, {key})"

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    @property
    def _root_url(self) -> str:
        """The server root: vLLM serves /tokenize beside /v1, not under it."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def _wait_seconds(self, state: Any) -> float:
        """Exponential backoff with full jitter, never shorter than the server's Retry-After."""
        exp = min(self.max_backoff, self.backoff * 2 ** (state.attempt_number - 1))
        wait = random.uniform(exp / 2, exp)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableHTTPError) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, self.max_backoff))
        return wait

    def _request(self, method: str, url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call with retries; returns the decoded JSON body or raises EngineError."""
        import httpx
        from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt

        retryable = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError, _RetryableHTTPError)
        retrying = Retrying(
            retry=retry_if_exception_type(retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait_seconds,
            before_sleep=lambda s: log.warning(
                "%s %s failed (%s); retry %d of %d", method, url, self._redact(str(s.outcome.exception())), s.attempt_number, self.max_retries
            ),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._http.request(method, url, json=payload)
                    if response.status_code in RETRY_STATUS:
                        raise _RetryableHTTPError(response.status_code, self._error_text(response), _retry_after(response))
            return self._decode(response, url)  # the last attempt succeeded
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise EngineError(
                f"{method} {url} failed after {self.max_retries + 1} attempts: {self._redact(str(last))}; "
                "is the server running and reachable? (raise max_retries= or check base_url=)"
            ) from None
        except httpx.TimeoutException as exc:
            raise EngineError(
                f"{method} {url} got no answer within {self.timeout:g} s ({type(exc).__name__}); "
                "raise timeout= for long prompts or a busy server"
            ) from None
        except httpx.HTTPError as exc:
            raise EngineError(f"{method} {url} failed: {self._redact(str(exc))}") from None

    def _decode(self, response: Any, url: str) -> dict[str, Any]:
        if response.status_code >= 400:
            hint = " (check the API key in $%s)" % self.api_key_env if response.status_code in (401, 403) else ""
            raise ServerError(f"{url} answered {self._error_text(response)}{hint}", response.status_code)
        try:
            return response.json()
        except ValueError:
            raise EngineError(f"{url} answered with something that is not JSON: {self._redact(response.text[:200])!r}") from None

    def _error_text(self, response: Any) -> str:
        try:
            body = response.json()
            message = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(message, dict):
                message = message.get("message", message)
            text = str(message)
        except ValueError:
            text = response.text
        return self._redact(f"HTTP {response.status_code}: {text[:500]}")

    def _models(self) -> list[dict[str, Any]]:
        body = self._request("GET", f"{self.base_url}/models")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise EngineError(f"{self.base_url}/models did not return a model list: {str(body)[:200]!r}")
        return [m for m in data if isinstance(m, dict)]

    def _map(self, fn: Any, items: Sequence[Any], desc: str) -> list[Any]:
        """Run fn over items concurrently (bounded), results in order, with a progress bar on big batches."""
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(item) for item in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="ctxagent-openai")
        futures = [self._pool.submit(fn, item) for item in items]
        show = self.show_progress if self.show_progress is not None else len(items) >= 32
        if show:
            from concurrent.futures import as_completed

            from tqdm.auto import tqdm

            for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="req"):
                pass
        return [f.result() for f in futures]

    def close(self) -> None:
        """Close connections and the worker pool; the engine cannot be used afterwards."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._http.close()

    def __enter__(self) -> "OpenAIEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Engine protocol --------------------------------------------------------------------
    @property
    def context_window(self) -> int:
        return self._context_window

    @staticmethod
    def _load_tokenizer(name: str) -> Any:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:  # pragma: no cover
            raise EngineNotInstalled("a local tokenizer needs transformers: `pip install transformers`") from exc
        try:
            return AutoTokenizer.from_pretrained(name)
        except OSError as exc:
            raise InputError(f"could not load tokenizer {name!r}: {exc}") from exc

    def count_tokens(self, text: str) -> int:
        return self._count_cached(text)

    def _count_uncached(self, text: str) -> int:
        if self._local_tokenizer is not None:
            return len(self._local_tokenizer(text, add_special_tokens=False)["input_ids"])
        if self._server_tokenize is not False:
            try:
                body = self._request(
                    "POST", f"{self._root_url}/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False}
                )
                count = body.get("count", len(body.get("tokens", []) or []))
                self._server_tokenize = True
                return int(count)
            except EngineError as exc:
                if self._server_tokenize:  # it worked before: this is a real failure
                    raise
                self._server_tokenize = False
                warnings.warn(
                    f"{self._root_url}/tokenize is not available ({exc}); token counts are estimated at "
                    f"{CHARS_PER_TOKEN} characters per token: pass tokenizer=... for exact counts",
                    stacklevel=3,
                )
        return max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *, stream_to: Sequence[TextSink | None] | None = None
    ) -> list[Completion]:
        params = params or SamplingParams()
        sinks = list(stream_to) if stream_to is not None else [None] * len(prompts)
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        # The OpenAI API (and vLLM's server, which enforces it) takes at most 4 stop strings; the rest
        # are applied here, to the text the server returns.
        stops = list(params.stop or ())
        if stops:
            common["stop"] = stops[:MAX_SERVER_STOPS]
        local_stops = stops[MAX_SERVER_STOPS:]
        if params.seed is not None:
            common["seed"] = params.seed

        def one(item: tuple[Prompt, TextSink | None]) -> Completion:
            prompt, sink = item
            if self.chat and sink is not None:
                streamed = self._stream_chat({**common, "messages": render_messages(prompt)}, sink)
                return replace(streamed, text=cut_at_stops(streamed.text, local_stops).strip())
            if self.chat:
                body = self._request("POST", f"{self.base_url}/chat/completions", {**common, "messages": render_messages(prompt)})
                choice = _first_choice(body, self.base_url)
                text = (choice.get("message") or {}).get("content") or ""
            else:
                raw = prompt if isinstance(prompt, str) else "\n\n".join(m.content for m in prompt)
                body = self._request("POST", f"{self.base_url}/completions", {**common, "prompt": raw})
                choice = _first_choice(body, self.base_url)
                text = choice.get("text") or ""
            usage = body.get("usage") or {}
            return Completion(
                text=cut_at_stops(text, local_stops).strip(),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            )

        return self._map(one, list(zip(prompts, sinks)), "generate")

    def _stream_chat(self, payload: dict[str, Any], sink: TextSink) -> Completion:
        """One chat completion with `stream: true`: each content delta goes to `sink` as it arrives.

        Not retried: a stream that broke half-way cannot be resumed, and its sink has already
        shown text; the error says so and the caller decides.
        """
        import httpx

        url = f"{self.base_url}/chat/completions"
        payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        usage: dict[str, Any] = {}
        finish = "stop"
        try:
            with self._http.stream("POST", url, json=payload) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response, url)  # raises ServerError with the server's message
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            parts.append(piece)
                            sink(piece)
                        if choice.get("finish_reason"):
                            finish = "length" if choice["finish_reason"] == "length" else "stop"
        except httpx.HTTPError as exc:
            raise EngineError(f"POST {url} (streamed) failed: {self._redact(str(exc))}; is the server running and reachable?") from None
        except ValueError as exc:
            raise EngineError(f"{url} sent a stream chunk that is not JSON: {exc}") from None
        text = "".join(parts)
        return Completion(
            text=text.strip(),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0) or (self.count_tokens(text) if text else 0)),
            finish_reason=finish,
        )

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        contexts = list(contexts) if contexts is not None else [""] * len(texts)
        if len(contexts) != len(texts):
            raise InputError(f"score() got {len(texts)} texts but {len(contexts)} contexts")
        return self._map(lambda pair: self._score_one(*pair), list(zip(texts, contexts)), "score")

    def _score_one(self, text: str, context: str) -> TokenScores:
        """Prompt log-probs of context+text via completions(echo=True, logprobs=0, max_tokens=1).

        The first token of a prompt has no log-prob (nothing precedes it) unless the server
        adds a BOS token; with an empty context a newline stands in as the context so every
        token of `text` is scored.
        """
        prefix = context or "\n"
        payload = {"model": self.model, "prompt": prefix + text, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0.0}
        url = f"{self.base_url}/completions"
        try:
            body = self._request("POST", url, payload)
        except ServerError as exc:
            if 400 <= exc.status < 500 and exc.status not in (401, 403):
                raise EngineError(
                    f"{url} cannot return prompt log-probs (echo=True, logprobs=0), which score() needs: {exc}. "
                    "Use a server that supports them (vLLM's `vllm serve` does) or the hf/vllm engine"
                ) from None
            raise
        logprobs = _first_choice(body, self.base_url).get("logprobs") or {}
        offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
        if not offsets or not values or len(offsets) != len(values):
            raise EngineError(
                f"{url} returned no prompt log-probs for echo=True, logprobs=0: the server does not support "
                "them, which score() needs. Use vLLM's `vllm serve` or the hf/vllm engine"
            )
        full = prefix + text
        # The echo covers the prompt and then the one generated token; drop tokens past the prompt.
        spans: list[tuple[int, int]] = []
        kept: list[float] = []
        starts = [int(o) for o in offsets] + [len(full)]
        for k, value in enumerate(values):
            start, end = starts[k], min(starts[k + 1], len(full))
            if start >= len(full):
                break
            if end <= len(prefix):
                continue  # a context token
            if value is None:
                raise EngineError(f"{url} gave no log-prob for prompt token {k}; cannot score {text[:40]!r}")
            spans.append((max(0, start - len(prefix)), max(0, end - len(prefix))))
            kept.append(float(value))
        return TokenScores(text=text, offsets=spans, logprobs=kept)

    # -- speed (see ctxagent.engines.speed) ----------------------------------------------------
    def speed_key(self) -> str:
        return f"openai|{self.base_url}|{self.model_name}"



def _first_choice(body: dict[str, Any], base_url: str) -> dict[str, Any]:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise EngineError(f"{base_url} returned a response without choices: {str(body)[:200]!r}")
    return choices[0]


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
