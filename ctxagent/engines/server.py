"""Serve any ctxagent engine over a small OpenAI-compatible HTTP API (standard library only).

Why it exists: the `openai` engine must be tested end to end against a real HTTP server
with a real model, on machines where `vllm serve` cannot run; and benchmarks compare
in-process engines with the same model behind HTTP. It is not a production server.

Endpoints (the subset of vLLM's server that ctxagent uses):
- GET  /v1/models            id and `max_model_len` (the engine's context window)
- POST /tokenize             {"prompt"} -> {"count", "max_model_len"}
- POST /v1/chat/completions  messages -> one choice; concurrent requests are gathered
                             for a few milliseconds into one batched `engine.generate`
- POST /v1/completions       `echo=True, logprobs=0` -> prompt log-probs via `engine.score`;
                             otherwise the prompt is generated from like a chat message

    python -m ctxagent.engines.server --engine hf --port 8000
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ctxagent.engines.base import Engine, Message, SamplingParams


@dataclass
class _Job:
    prompt: Any
    params: SamplingParams
    done: Future = field(default_factory=Future)


class _Batcher:
    """Gathers concurrent generation requests into batched engine calls (one worker thread)."""

    def __init__(self, engine: Engine, lock: threading.Lock, max_batch: int, wait: float) -> None:
        self.engine, self.lock, self.max_batch, self.wait = engine, lock, max_batch, wait
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.batches: list[int] = []  # sizes of the engine calls made, for tests and benchmarks
        self.thread = threading.Thread(target=self._run, name="ctxagent-batcher", daemon=True)
        self.thread.start()

    def submit(self, prompt: Any, params: SamplingParams) -> Any:
        job = _Job(prompt, params)
        self.jobs.put(job)
        return job.done.result()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.wait
            while len(batch) < self.max_batch:
                try:
                    job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)
                    break
                batch.append(job)
            groups: dict[str, list[_Job]] = {}
            for job in batch:
                groups.setdefault(job.params.model_dump_json(), []).append(job)
            for jobs in groups.values():
                try:
                    with self.lock:
                        results = self.engine.generate([j.prompt for j in jobs], jobs[0].params)
                    self.batches.append(len(jobs))
                    for job, result in zip(jobs, results):
                        job.done.set_result(result)
                except Exception as exc:  # noqa: BLE001 - handed to each waiting request
                    for job in jobs:
                        job.done.set_exception(exc)


class OpenAICompatServer:
    """`with OpenAICompatServer(engine) as server: get_engine("openai", base_url=server.base_url)`.

    port=0 picks a free port. api_key: when set, requests must carry `Authorization: Bearer <key>`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str | None = None,
        api_key: str | None = None,
        max_batch: int = 16,
        batch_wait: float = 0.01,
        report_window: bool = True,
    ) -> None:
        self.engine = engine
        self.model_name = model_name or getattr(engine, "model_name", None) or engine.name
        self.api_key = api_key
        self.report_window = report_window
        self.lock = threading.Lock()
        self.batcher = _Batcher(engine, self.lock, max_batch, batch_wait)
        self.requests: list[str] = []  # request paths seen, in order
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "OpenAICompatServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="ctxagent-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.batcher.stop()

    def __enter__(self) -> "OpenAICompatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- endpoint logic (the handler only does HTTP) ----------------------------------------
    def models(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.model_name, "object": "model", "owned_by": "ctxagent"}
        if self.report_window:
            entry["max_model_len"] = self.engine.context_window
        return {"object": "list", "data": [entry]}

    def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise _BadRequest("'prompt' must be a string")
        with self.lock:
            count = self.engine.count_tokens(prompt)
        return {"count": count, "max_model_len": self.engine.context_window}

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty list")
        prompt = [Message(role=str(m.get("role", "user")), content=str(m.get("content", ""))) for m in messages]
        completion = self.batcher.submit(prompt, _params(body))
        choice = {"index": 0, "message": {"role": "assistant", "content": completion.text}, "finish_reason": completion.finish_reason}
        return _envelope("chat.completion", self.model_name, choice, completion.prompt_tokens, completion.completion_tokens)

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise _BadRequest("'prompt' must be a string (token-id prompts are not supported here)")
        if body.get("echo") and body.get("logprobs") is not None:
            with self.lock:
                [scores] = self.engine.score([prompt])
            tokens = [prompt[a:b] for a, b in scores.offsets]
            logprobs = {
                "tokens": tokens,
                "token_logprobs": list(scores.logprobs),
                "text_offset": [a for a, _ in scores.offsets],
                "top_logprobs": [None] * len(tokens),
            }
            choice = {"index": 0, "text": prompt, "logprobs": logprobs, "finish_reason": "length"}
            return _envelope("text_completion", self.model_name, choice, len(tokens), 0)
        completion = self.batcher.submit(prompt, _params(body))
        choice = {"index": 0, "text": completion.text, "logprobs": None, "finish_reason": completion.finish_reason}
        return _envelope("text_completion", self.model_name, choice, completion.prompt_tokens, completion.completion_tokens)


class _BadRequest(Exception):
    pass


def _params(body: dict[str, Any]) -> SamplingParams:
    stop = body.get("stop") or []
    try:
        return SamplingParams(
            max_new_tokens=int(body.get("max_tokens") or 256),
            temperature=float(body.get("temperature") if body.get("temperature") is not None else 1.0),
            top_p=float(body.get("top_p") if body.get("top_p") is not None else 1.0),
            stop=[stop] if isinstance(stop, str) else list(stop),
            seed=body.get("seed"),
        )
    except (ValueError, TypeError) as exc:
        raise _BadRequest(f"bad sampling parameters: {exc}") from None


def _envelope(kind: str, model: str, choice: dict[str, Any], prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:16]}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def _handler_for(server: OpenAICompatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and benchmarks read stdout
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

        def _authorised(self) -> bool:
            if server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._error(401, "invalid or missing API key")
            return False

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server.requests.append(self.path)
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, server.models())
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            server.requests.append(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._authorised():
                return
            routes = {"/tokenize": server.tokenize, "/v1/chat/completions": server.chat, "/v1/completions": server.completions}
            route = routes.get(self.path.rstrip("/"))
            if route is None:
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise _BadRequest("the request body must be a JSON object")
                self._send(200, route(body))
            except (_BadRequest, json.JSONDecodeError) as exc:
                self._error(400, str(exc))
            except Exception as exc:  # noqa: BLE001 - an engine error becomes a 400/500 with its message
                status = 400 if isinstance(exc, ValueError) else 500
                self._error(status, f"{type(exc).__name__}: {exc}")

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a ctxagent engine over an OpenAI-compatible API.")
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--model", default=None)
    parser.add_argument("--context-window", type=int, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch", type=int, default=16)
    args = parser.parse_args(argv)
    from ctxagent.engines import get_engine

    options: dict[str, Any] = {"model": args.model}
    if args.context_window:
        options["context_window"] = args.context_window
    engine = get_engine(args.engine, **options)
    server = OpenAICompatServer(engine, host=args.host, port=args.port, max_batch=args.max_batch)
    print(f"serving {server.model_name} at {server.base_url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.batcher.stop()


if __name__ == "__main__":
    main()
