"""The FastAPI app behind `ctxagent serve`: OpenAI's chat API over ctxagent's recipes.

One engine serves every request, wrapped in the code base's one batcher
(`engines/batching.py`): each request runs the ordinary SDK call in a worker thread
registered with the batcher, so concurrent requests' recipe steps reach the model as
batched calls. The event loop only parses, authorises and streams.

Streaming and the answer check: a recipe's final answer is checked against its
citations after the model has written it, and may be replaced. So `content` deltas
carry only the checked answer, sent once it is known; while the recipe works, chunks
with an empty delta carry its progress (plan, steps, the draft as it is written) in
the extra `ctxagent.event` field, which plain clients ignore.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctxagent.agent import ContextAgent
from ctxagent.cancel import CancelToken, Cancelled, Interrupted, cancel_scope, stop_scope
from ctxagent.defaults import MAX_NEW_TOKENS
from ctxagent.engines.base import Engine, Message, SamplingParams
from ctxagent.engines.batching import BatchingEngine
from ctxagent.errors import CtxAgentError, EngineError, InputError, UnknownNameError
from ctxagent.server import protocol
from ctxagent.server.gate import Gate
from ctxagent.server.keys import NO_KEY, KeyRing, keys_by_id
from ctxagent.server.memory import Trimmer, cap_arenas
from ctxagent.server.metrics import CONTENT_TYPE, Metrics
from ctxagent.server.messages import split_messages
from ctxagent.server.messages import Split
from ctxagent.types import Answer, Budget, Event

log = logging.getLogger(__name__)

RECIPE_PREFIX = "ctxagent/"
# Paths of the latest requests kept for tests and debugging (a server lives long: never all of them).
RECENT_KEPT = 256


class ServerSettings(BaseModel):
    """How `ctxagent serve` behaves; every limit has a flag of the same name."""

    api_key: str | None = Field(default=None, description="a key required as 'Authorization: Bearer KEY' (one of api_keys)")
    api_keys: list[str] = Field(default_factory=list, description="keys accepted; with none (and no api_key or keys_file) no key is needed")
    keys_file: str | None = Field(default=None, description="file of more keys, one a line: 'key' or 'name: key' (the name is its id in /metrics)")
    max_per_key: int | None = Field(default=None, gt=0, description="requests in flight per key; more get 429 with Retry-After")
    model_name: str | None = Field(default=None, description="id of the engine's own model for pass-through (default: the engine's)")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0, description="larger request bodies get 413")
    request_timeout: float = Field(default=600.0, gt=0, description="seconds before a request gets 504")
    max_concurrent: int = Field(default=64, gt=0, description="requests worked on at once; more wait their turn")
    batch_wait: float = Field(default=0.02, ge=0, description="seconds the batcher waits to merge requests' engine calls")
    budget: Budget = Field(default_factory=Budget, description="default budget of a recipe request")
    trim_seconds: float = Field(default=5.0, ge=0, description="at most this often, after a request, give memory malloc holds free back to the system; 0: never")


class ApiError(Exception):
    """An HTTP error in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param


def create_app(engine: Engine, settings: ServerSettings | None = None) -> Any:
    """The ASGI app serving `engine`; run it with uvicorn (see `ctxagent.server.run`)."""
    settings = settings or ServerSettings()
    state = ServerState(engine, settings)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="ctxagent", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctxagent = state
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Gate, state=state)  # added last: outermost, it sees every request

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(protocol.error_body(exc.message, exc.kind, exc.code, exc.param), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the field and the problem, never echo the input (it may be the document).
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors())
        return JSONResponse(protocol.error_body(f"malformed request: {reasons}", "invalid_request_error"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        return JSONResponse(protocol.error_body(message, "invalid_request_error", exc.status_code), status_code=exc.status_code)

    # The key and its limit are checked by Gate before any route runs.
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": state.model_name, "in_flight": state.in_flight}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return state.models()

    @app.post("/tokenize")
    async def tokenize(body: protocol.TokenizeRequest) -> dict[str, Any]:
        count = await state.in_worker(lambda: state.batcher.count_tokens(body.prompt))
        return {"count": count, "max_model_len": state.batcher.context_window}

    @app.post("/v1/completions")
    async def completions(request: Request, body: protocol.CompletionRequest) -> dict[str, Any]:
        return await _until_disconnect(request, lambda token: state.completions(body, _key(request), token))

    @app.post("/v1/chat/completions")
    async def chat(request: Request, body: protocol.ChatRequest) -> Any:
        recipe = state.recipe_for(body.model)
        split = state.split(body) if recipe is not None else None
        kid = _key(request)
        if body.stream:
            events = state.chat_stream(body, recipe, split, kid, time.perf_counter())
            first = await events.__anext__()  # errors before the first chunk are plain HTTP errors
            return StreamingResponse(_chained(first, events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        return await _until_disconnect(request, lambda token: state.chat(body, recipe, split, kid, token))

    return app


def _key(request: Request) -> str:
    return str(getattr(request.state, "key_id", NO_KEY))


async def _until_disconnect(request: Request, work: Callable[[CancelToken], Any]) -> Any:
    """Run `work(token)`; if the client disconnects first, stop waiting for it: the work's
    `in_worker` then cancels the token and the worker stops at the engine's next step. The
    body was read already, so the only message left to receive is the disconnect."""
    token = CancelToken()
    task = asyncio.ensure_future(work(token))

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        raise ApiError(499, "the client closed the connection", "invalid_request_error", "client_closed")
    return task.result()


async def _chained(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for item in rest:
        yield item


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


class ServerState:
    """What the routes share: the batched engine, the worker threads, the SDK agent."""

    def __init__(self, engine: Engine, settings: ServerSettings) -> None:
        self.settings = settings
        self.batcher = engine if isinstance(engine, BatchingEngine) else BatchingEngine(engine, max_wait=settings.batch_wait)
        self.model_name = settings.model_name or getattr(engine, "model_name", None) or engine.name
        self.agent = ContextAgent(engine=self.batcher, budget=settings.budget)
        self.executor = ThreadPoolExecutor(max_workers=settings.max_concurrent, thread_name_prefix="ctxagent-serve")
        keys = keys_by_id([k for k in [settings.api_key, *settings.api_keys] if k], settings.keys_file)
        self.keys = KeyRing(keys, settings.max_per_key)
        self.metrics = Metrics()
        # Native memory freed by requests goes back to the system (ctxagent/server/memory.py).
        cap_arenas()
        self.trimmer = Trimmer(settings.trim_seconds)
        self._working, self._working_lock = 0, threading.Lock()  # requests in a worker thread (in_flight counts on the event loop)
        self.recent: deque[str] = deque(maxlen=RECENT_KEPT)  # the latest requests' paths, for tests; bounded
        self.seen = 0  # requests seen since start
        self.in_flight = 0  # requests in a worker thread now

    def note_request(self, path: str) -> None:
        self.recent.append(path)
        self.seen += 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- models ---------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        from ctxagent.recipes import registry

        own = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "ctxagent", "max_model_len": self.batcher.context_window}
        recipes = [{"id": RECIPE_PREFIX + name, "object": "model", "created": 0, "owned_by": "ctxagent"} for name in registry.names()]
        return {"object": "list", "data": [own, *recipes]}

    def recipe_for(self, model: str) -> str | None:
        """The recipe a model id names; None for the engine's own model (pass-through)."""
        from ctxagent.recipes import registry

        if model == self.model_name:
            return None
        if model.startswith(RECIPE_PREFIX) and model[len(RECIPE_PREFIX) :] in registry.names():
            return model[len(RECIPE_PREFIX) :]
        raise ApiError(404, f"model {model!r} does not exist here: GET /v1/models lists {self.model_name!r} and one 'ctxagent/<recipe>' per recipe", "invalid_request_error", "model_not_found", "model")

    # -- running work in the batcher's worker threads ---------------------------------------
    def _as_worker(self, fn: Callable[[], Any], token: CancelToken, queued: float) -> Any:
        self.metrics.queue_wait.observe(time.perf_counter() - queued)
        token.raise_if_cancelled()  # its client left while it waited for a worker: do nothing
        # The token reaches RunContexts made in fn (recipes) and, through the stop check, the
        # engine calls fn makes itself (pass-through completions).
        with self._working_lock:
            self._working += 1
        try:
            with cancel_scope(token), stop_scope(lambda: token.cancelled), self.batcher.worker():
                return fn()
        finally:
            with self._working_lock:
                self._working -= 1
                idle = self._working == 0
            self.trimmer.after_request(idle=idle)

    async def in_worker(self, fn: Callable[[], Any], token: CancelToken | None = None) -> Any:
        """Run `fn` in a worker thread under `token`: the token is cancelled when the request
        times out (504) or its caller stops waiting (a client that left), and the run then
        stops at the engine's next step, freeing the worker."""
        loop = asyncio.get_running_loop()
        token = token or CancelToken()
        self.in_flight += 1
        try:
            work = loop.run_in_executor(self.executor, self._as_worker, fn, token, time.perf_counter())
            return await asyncio.wait_for(work, self.settings.request_timeout)
        except asyncio.TimeoutError:
            self._cancel(token, "timeout")
            raise _timeout(self.settings.request_timeout) from None
        except asyncio.CancelledError:
            self._cancel(token, "disconnect")
            raise
        except (Cancelled, Interrupted):
            raise ApiError(499, f"the request was cancelled ({token.reason or 'stopped'})", "invalid_request_error", "cancelled") from None
        except Exception as exc:  # noqa: BLE001 - mapped to an HTTP status
            raise _as_api_error(exc) from None
        finally:
            self.in_flight -= 1

    def _cancel(self, token: CancelToken, reason: str) -> None:
        if not token.cancelled:
            token.cancel(reason)
            self.metrics.cancellations.labels(reason).inc()
            log.info("request cancelled (%s): its run stops at the engine's next step", reason)

    def _budget(self, body: protocol.ChatRequest) -> Budget:
        budget = body.budget or self.settings.budget
        # Stop reading in time to answer before the request times out.
        cap = 0.8 * self.settings.request_timeout
        update: dict[str, Any] = {"max_seconds": min(budget.max_seconds or cap, cap)}
        if body.new_tokens():
            update["max_new_tokens"] = body.new_tokens()
        return budget.model_copy(update=update)

    def split(self, body: protocol.ChatRequest) -> Split:
        """Documents and question from the request, or 400 saying what is missing."""
        try:
            return split_messages(body.plain_messages(), body.documents)
        except InputError as exc:
            raise ApiError(400, str(exc), param="messages") from None

    def _ask(self, body: protocol.ChatRequest, recipe: str, split: Split, on_event: Callable[[Event], None] | None = None) -> tuple[Answer, str]:
        answer = self.agent.ask(split.documents, split.question, recipe=recipe, budget=self._budget(body), on_event=on_event, **body.recipe_options)
        return answer, split.rule

    def _sampling(self, max_tokens: int | None, temperature: float | None, top_p: float | None, stop: list[str], seed: int | None) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=max_tokens or MAX_NEW_TOKENS,
            temperature=1.0 if temperature is None else temperature,
            top_p=1.0 if top_p is None else top_p,
            stop=stop,
            seed=seed,
        )

    # -- chat ----------------------------------------------------------------------------
    async def chat(self, body: protocol.ChatRequest, recipe: str | None, split: Split | None, kid: str = NO_KEY, token: CancelToken | None = None) -> dict[str, Any]:
        cid = protocol.new_id()
        if recipe is None:
            prompt = [Message(role=m["role"], content=m["content"]) for m in body.plain_messages()]
            params = self._sampling(body.new_tokens(), body.temperature, body.top_p, body.stops(), body.seed)
            [completion] = await self.in_worker(lambda: self.batcher.generate([prompt], params), token)
            self.metrics.usage(kid, completion.prompt_tokens, completion.completion_tokens, 1)
            usage = protocol.usage_body(completion.prompt_tokens, completion.completion_tokens)
            return protocol.chat_completion(cid, body.model, completion.text, completion.finish_reason, usage)
        began = time.perf_counter()
        assert split is not None
        answer, rule = await self.in_worker(lambda: self._ask(body, recipe, split), token)
        log.info("answered with %s in %.1f s (%d engine calls)", answer.recipe, time.perf_counter() - began, answer.usage.engine_calls)
        self.metrics.usage(kid, answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.engine_calls)
        usage = protocol.usage_body(answer.usage.prompt_tokens, answer.usage.completion_tokens)
        return protocol.chat_completion(cid, body.model, _content(answer, body), protocol.finish_reason(answer), usage, protocol.answer_extra(answer, rule))

    async def chat_stream(
        self, body: protocol.ChatRequest, recipe: str | None, split: Split | None, kid: str = NO_KEY, arrived: float | None = None
    ) -> AsyncIterator[str]:
        """SSE lines: a role chunk, progress chunks, the checked answer's content, a final chunk
        with the citations, a usage chunk when asked for, `data: [DONE]`.

        A client that closes the stream early makes the server close this generator; the
        run's token is then cancelled and its worker stops at the engine's next step."""
        cid, model = protocol.new_id(), body.model
        arrived = arrived or time.perf_counter()
        token = CancelToken()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        if recipe is None:
            prompt = [Message(role=m["role"], content=m["content"]) for m in body.plain_messages()]
            params = self._sampling(body.new_tokens(), body.temperature, body.top_p, body.stops(), body.seed)
            streamed = self.batcher.streams
            work: Callable[[], Any] = lambda: self.batcher.generate([prompt], params, stream_to=[put] if streamed else None)
        else:
            assert split is not None
            work = lambda: self._ask(body, recipe, split, on_event=put)
        run = asyncio.ensure_future(self.in_worker(work, token))
        try:
            async for line in self._stream_lines(body, recipe, cid, model, queue, run, kid, arrived):
                yield line
        finally:
            if not run.done():  # closed before the run ended: nobody waits for it any more
                self._cancel(token, "disconnect")
                run.cancel()

    async def _stream_lines(
        self, body: protocol.ChatRequest, recipe: str | None, cid: str, model: str, queue: asyncio.Queue[Any], run: asyncio.Future[Any], kid: str, arrived: float
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        yield _sse(protocol.chat_chunk(cid, model, {"role": "assistant", "content": ""}))
        deadline = loop.time() + self.settings.request_timeout + 1
        sent_text = False
        first = True
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                try:
                    done, _ = await asyncio.wait({getter, run}, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
                if getter in done:
                    item = getter.result()
                    if first:
                        first = False
                        self.metrics.first_event.observe(time.perf_counter() - arrived)
                    if isinstance(item, str):  # pass-through: the model's own text, as written
                        sent_text = True
                        yield _sse(protocol.chat_chunk(cid, model, {"content": item}))
                    else:
                        yield _sse(protocol.chat_chunk(cid, model, {}, extra={"event": item.model_dump(mode="json")}))
                    continue
                if not done:
                    raise _timeout(self.settings.request_timeout)
                while not queue.empty():  # events queued before the run ended
                    item = queue.get_nowait()
                    if isinstance(item, str):
                        sent_text = True
                        yield _sse(protocol.chat_chunk(cid, model, {"content": item}))
                result = run.result()
                break
        except ApiError as exc:
            yield _sse(protocol.error_body(exc.message, exc.kind, exc.code))
            yield _sse("[DONE]")
            return
        if recipe is None:
            [completion] = result
            if not sent_text and completion.text:
                yield _sse(protocol.chat_chunk(cid, model, {"content": completion.text}))
            yield _sse(protocol.chat_chunk(cid, model, {}, completion.finish_reason))
            usage = protocol.usage_body(completion.prompt_tokens, completion.completion_tokens)
            self.metrics.usage(kid, completion.prompt_tokens, completion.completion_tokens, 1)
        else:
            answer, rule = result
            for piece in re.findall(r"\s*\S+", _content(answer, body)):
                yield _sse(protocol.chat_chunk(cid, model, {"content": piece}))
            yield _sse(protocol.chat_chunk(cid, model, {}, protocol.finish_reason(answer), extra=protocol.answer_extra(answer, rule)))
            usage = protocol.usage_body(answer.usage.prompt_tokens, answer.usage.completion_tokens)
            self.metrics.usage(kid, answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.engine_calls)
        if body.stream_options is not None and body.stream_options.include_usage:
            yield _sse(protocol.chat_chunk(cid, model, None) | {"usage": usage})
        yield _sse("[DONE]")

    # -- legacy completions (the openai engine's log-probs) ----------------------------------
    async def completions(self, body: protocol.CompletionRequest, kid: str = NO_KEY, token: CancelToken | None = None) -> dict[str, Any]:
        if body.model is not None and body.model != self.model_name:
            self.recipe_for(body.model)  # 404 for unknown models
            raise ApiError(400, "recipes answer through /v1/chat/completions; /v1/completions serves the engine's own model only", param="model")
        model = self.model_name
        if body.echo and body.logprobs is not None:
            [scores] = await self.in_worker(lambda: self.batcher.score([body.prompt]), token)
            tokens = [body.prompt[a:b] for a, b in scores.offsets]
            logprobs = {
                "tokens": tokens,
                "token_logprobs": list(scores.logprobs),
                "text_offset": [a for a, _ in scores.offsets],
                "top_logprobs": [None] * len(tokens),
            }
            choice = {"index": 0, "text": body.prompt, "logprobs": logprobs, "finish_reason": "length"}
            usage = protocol.usage_body(len(tokens), 0)
        else:
            stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
            params = self._sampling(body.max_tokens, body.temperature, body.top_p, stop, body.seed)
            [completion] = await self.in_worker(lambda: self.batcher.generate([body.prompt], params), token)
            self.metrics.usage(kid, completion.prompt_tokens, completion.completion_tokens, 1)
            choice = {"index": 0, "text": completion.text, "logprobs": None, "finish_reason": completion.finish_reason}
            usage = protocol.usage_body(completion.prompt_tokens, completion.completion_tokens)
        return {"id": protocol.new_id(), "object": "text_completion", "created": int(time.time()), "model": model, "choices": [choice], "usage": usage}


def _content(answer: Answer, body: protocol.ChatRequest) -> str:
    """The answer's text; with `"citations": "inline"` in the request, its citations follow it
    in the text, for clients that keep nothing but the content (LangChain's ChatOpenAI)."""
    if (body.model_extra or {}).get("citations") != "inline" or not answer.citations:
        return answer.text
    lines = [f'[{i}] {c.doc_id}:{c.start}-{c.end} "{c.quote}"' for i, c in enumerate(answer.citations, 1)]
    return answer.text + "\n\n" + "\n".join(lines)


def _timeout(seconds: float) -> ApiError:
    return ApiError(504, f"no answer within the server's request timeout of {seconds:g} s: ask with a smaller budget or start the server with a larger --request-timeout", "timeout", "timeout")


def _as_api_error(exc: Exception) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownNameError):
        return ApiError(400, str(exc))
    if isinstance(exc, InputError):
        return ApiError(400, str(exc))
    if isinstance(exc, EngineError):
        return ApiError(502, f"the engine failed: {exc}", "server_error", "engine_error")
    if isinstance(exc, CtxAgentError):
        return ApiError(500, str(exc), "server_error")
    if isinstance(exc, (TypeError, ValueError)):  # e.g. an unknown recipe option
        return ApiError(400, f"{type(exc).__name__}: {exc}")
    log.exception("request failed")
    return ApiError(500, f"internal error ({type(exc).__name__}); see the server log", "server_error")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 before anything reads it all."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        seen = 0
        started = False

        async def counted_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(seen)
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge as exc:
            if not started:
                await self._refuse(send, exc.size)

    async def _refuse(self, send: Callable[[dict[str, Any]], Any], size: int) -> None:
        body = json.dumps(
            protocol.error_body(
                f"request body of {size} bytes is over the server's limit of {self.limit} bytes: send a shorter document or start the server with a larger --max-body-bytes",
                "invalid_request_error",
                "request_too_large",
            )
        ).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size
