"""Running the app: `ctxagent serve` in the foreground, or a server in a background thread.

Both bind the socket themselves so port 0 (a free port) works and the real address is
known before the first request. On SIGINT/SIGTERM uvicorn stops accepting connections
and lets in-flight requests finish (up to the request timeout) before it exits.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from ctxagent.engines.base import Engine
from ctxagent.server.app import ServerSettings, ServerState, create_app

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass
class RunningServer:
    base_url: str  # the API root, ending in /v1
    state: ServerState
    server: Any  # uvicorn.Server


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from ctxagent.errors import InputError

        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port, or 0 for any free one") from None
    sock.listen(2048)
    return sock


def _uvicorn_server(app: Any, settings: ServerSettings) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=int(settings.request_timeout) + 1)
    return uvicorn.Server(config)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/v1"


def serve(engine: Engine, settings: ServerSettings, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted; prints the address on stdout once listening."""
    if host not in LOOPBACK and not (settings.api_key or settings.api_keys or settings.keys_file):
        log.warning("listening on %s without an API key: anyone who can reach this address can use the model; pass --api-key", host)
    sock = _bind(host, port)
    app = create_app(engine, settings)
    server = _uvicorn_server(app, settings)
    print(f"ctxagent serve: {app.state.ctxagent.model_name} and its recipes at {_url(sock)}", flush=True)
    server.run(sockets=[sock])
    sys.stdout.flush()


@contextmanager
def running_server(engine: Engine, settings: ServerSettings | None = None, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningServer]:
    """`with running_server(engine) as s: get_engine("openai", base_url=s.base_url)`: a real server in a thread."""
    settings = settings or ServerSettings()
    sock = _bind(host, port)
    app = create_app(engine, settings)
    server = _uvicorn_server(app, settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ctxagent-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(_url(sock), app.state.ctxagent, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
