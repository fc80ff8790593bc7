"""The door of every request: API key, per-key limit, and the request metrics.

A pure ASGI middleware, outermost, so that it sees every request, the ones refused further
in (413, 400) included, and a stream until its last byte. It answers 401 for a missing or
wrong key and 429 (with `Retry-After`) for a key at its limit of requests in flight, both in
OpenAI's error shape, and records the key's id (never the key) in `scope["state"]` for the
routes and the metrics. `/health` and `/metrics` need no key.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Protocol

from ctxagent.server import protocol
from ctxagent.server.keys import NO_KEY, KeyRing
from ctxagent.server.metrics import Metrics, route_label

OPEN_ROUTES = frozenset({"/health", "/metrics"})
# Seconds a client refused at its key's limit is told to wait: about one short request.
RETRY_AFTER = 1


class Guarded(Protocol):
    keys: KeyRing
    metrics: Metrics

    def note_request(self, path: str) -> None: ...


class Gate:
    def __init__(self, app: Any, state: Guarded) -> None:
        self.app, self.state = app, state
        self.keys, self.metrics = state.keys, state.metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = route_label(path)
        self.state.note_request(path)
        began = time.perf_counter()
        status = 500
        kid = NO_KEY

        async def sent(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            if path in OPEN_ROUTES:
                await self.app(scope, receive, sent)
                return
            headers = dict(scope.get("headers") or [])
            found = self.keys.identify(headers.get(b"authorization", b"").decode("latin-1"))
            if found is None:
                kid = "invalid"
                await _refuse(sent, 401, "invalid or missing API key: send 'Authorization: Bearer <key>' with a key the server was started with", "invalid_request_error", "invalid_api_key")
                return
            kid = found
            if not self.keys.acquire(kid):
                await _refuse(
                    sent, 429,
                    f"too many requests in flight for API key {kid} (limit {self.keys.max_per_key}): retry after the ones in flight finish",
                    "requests", "rate_limit_exceeded", [(b"retry-after", str(RETRY_AFTER).encode())],
                )
                return
            try:
                scope.setdefault("state", {})["key_id"] = kid
                await self.app(scope, receive, sent)
            finally:
                self.keys.release(kid)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(route, str(status), kid).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - began)


async def _refuse(send: Callable[[dict[str, Any]], Any], status: int, message: str, kind: str, code: str, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    body = json.dumps(protocol.error_body(message, kind, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
