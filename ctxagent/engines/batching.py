"""Cross-question micro-batching: many recipes running at once share one engine call per step.

Recipes are written for one question: each step hands its prompts to `ctx.generate`.
To batch *across* documents without rewriting them, the batch runner runs several
questions in threads, each with its own RunContext, all talking to one
`BatchingEngine`. The wrapper holds every `generate` (or `score`) call until all
active workers are waiting on the engine (or `max_wait` seconds have passed since
the oldest call arrived), then sends the gathered prompts to the real engine in
one call and hands each worker its own completions. So a step's prompts over many
documents reach vLLM (or the hf engine's padded batches) together.

A call may carry sinks (`stream_to`) for its prompts; they travel with the prompts into
the merged call, so a streamed answer still shares its batch with everyone else's.

The server (`ctxagent serve`) uses the same wrapper: each request thread is a worker.

Each call also carries its caller's stop check (ctxagent/cancel.py): a call whose check
says stop while it still waits is withdrawn, and in a merged call each prompt's row stops on
its own caller's check (engines with `stops_rows`, like hf), so a cancelled request stops
at the next token without stopping anyone else's.

Calls with different sampling parameters go out as separate engine calls. If a
merged call fails (one prompt too long, say), each worker's call is retried on its
own, so only the offending question sees the error.

    batcher = BatchingEngine(get_engine("hf"))
    def work(q):
        with batcher.worker():
            return ContextAgent(engine=batcher).ask(doc, q)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ctxagent.cancel import Interrupted, StopCheck, current_stop, stop_scope
from ctxagent.engines.base import Completion, Engine, Prompt, SamplingParams, TextSink, TokenScores, streams


BATCH_SIZES_KEPT = 1024
# Seconds between looks at a waiting call's stop check.
STOP_POLL = 0.05


@dataclass
class _Request:
    kind: str  # "generate" | "score"
    key: str  # requests with the same key may share one engine call
    items: list[Any]  # prompts, or (text, context) pairs
    params: SamplingParams | None = None
    sinks: list[TextSink | None] | None = None  # one per prompt, for streamed generation
    stop: StopCheck | None = field(default_factory=current_stop)  # the caller's, captured in its thread
    arrived: float = field(default_factory=time.monotonic)
    taken: bool = False
    done: bool = False
    result: list[Any] | None = None
    error: BaseException | None = None


class BatchingEngine:
    """An Engine that merges concurrent calls from worker threads into batched calls of `engine`.

    Threads that call the engine should register with `with batcher.worker():` for the
    duration of their task, so the wrapper knows how many callers to wait for. Calls
    from unregistered threads go straight through (after any batch in flight).
    """

    def __init__(self, engine: Engine, *, max_wait: float = 1.0) -> None:
        self.inner = engine
        self.name = getattr(engine, "name", "engine")
        self.max_wait = max_wait
        self._cv = threading.Condition()
        self._pending: list[_Request] = []
        self._active = 0
        self._busy = False  # a merged call is running
        self._engine_lock = threading.RLock()  # the model and its tokenizer are used by one thread at a time
        self.engine_calls = 0  # calls made to the wrapped engine
        self.requests = 0  # calls received from workers
        # Prompts (or texts) per call to the wrapped engine, the latest few only: a server lives long.
        self.batch_sizes: deque[int] = deque(maxlen=BATCH_SIZES_KEPT)

    # -- the Engine protocol --------------------------------------------------------------
    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, text: str) -> int:
        with self._engine_lock:
            return self.inner.count_tokens(text)

    @property
    def streams(self) -> bool:
        return streams(self.inner)

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *, stream_to: Sequence[TextSink | None] | None = None
    ) -> list[Completion]:
        params = params or SamplingParams()
        sinks = list(stream_to) if stream_to is not None and self.streams else None
        return self._submit(_Request("generate", "g:" + params.model_dump_json(), list(prompts), params, sinks))

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        contexts = list(contexts) if contexts is not None else [""] * len(texts)
        return self._submit(_Request("score", "s", list(zip(texts, contexts))))

    # -- the wrapped engine's optional capabilities (engines/base.py CAPABILITIES) -----------
    # Each is there exactly when the wrapped engine has it, so `getattr(batcher, "speed", None)`
    # answers as it would for the engine itself.
    def _inner(self, name: str) -> Any:
        try:
            return getattr(self.inner, name)
        except AttributeError:
            raise AttributeError(f"the wrapped {self.name} engine has no {name!r}") from None

    @property
    def model_name(self) -> str:
        return self._inner("model_name")

    @property
    def tokenizer(self) -> Any:
        return self._inner("tokenizer")

    @property
    def tokens_per_second(self) -> float:
        return self._inner("tokens_per_second")

    @property
    def speed(self) -> Any:
        return self._inner("speed")

    @property
    def speed_key(self) -> Any:
        return self._inner("speed_key")

    @property
    def _speed(self) -> Any:  # a speed measured earlier (engines/speed.py engine_speed(probe=False))
        return getattr(self.inner, "_speed", None)

    # -- workers ---------------------------------------------------------------------------
    def join(self, n: int = 1) -> None:
        """Count `n` more callers to wait for. Register a pool's threads before starting them,
        or the first thread's call goes out alone before the others have joined."""
        with self._cv:
            self._active += n

    def leave(self) -> None:
        """One caller is done; those left waiting may now be everyone."""
        with self._cv:
            self._active -= 1
            self._cv.notify_all()

    @contextmanager
    def worker(self) -> Iterator[None]:
        """Count the calling thread as an active caller while the block runs."""
        self.join()
        try:
            yield
        finally:
            self.leave()

    # -- gathering -------------------------------------------------------------------------
    def _ready(self, now: float) -> bool:
        if self._busy or not self._pending:
            return False
        if len(self._pending) >= self._active:
            return True
        return now - self._pending[0].arrived >= self.max_wait

    def _submit(self, request: _Request) -> list[Any]:
        if not request.items:
            return []
        with self._cv:
            self.requests += 1
            self._pending.append(request)
            self._cv.notify_all()
            while not request.done:
                if not request.taken and request.stop is not None and request.stop():
                    self._pending.remove(request)  # withdrawn before it reached the engine
                    self._cv.notify_all()
                    raise Interrupted("the call was withdrawn before it reached the engine: its caller's stop check said so")
                now = time.monotonic()
                if not request.taken and self._ready(now):
                    batch, self._pending = self._pending, []
                    for r in batch:
                        r.taken = True
                    self._busy = True
                    self._cv.release()
                    try:
                        self._run(batch)
                    finally:
                        self._cv.acquire()
                        self._busy = False
                        self._cv.notify_all()
                    continue
                timeout = None
                if not request.taken and not self._busy:
                    timeout = max(0.001, self._pending[0].arrived + self.max_wait - now) if self._pending else 0.001
                if request.stop is not None and not request.taken:
                    timeout = min(timeout or STOP_POLL, STOP_POLL)  # look at the stop check while waiting
                self._cv.wait(timeout)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _run(self, batch: list[_Request]) -> None:
        """Send each group of compatible requests as one engine call; never raises."""
        groups: dict[str, list[_Request]] = {}
        for r in batch:
            groups.setdefault(r.key, []).append(r)
        for group in groups.values():
            try:
                outputs = self._call(group[0], group)
                at = 0
                for r in group:
                    r.result, at = outputs[at : at + len(r.items)], at + len(r.items)
            except Exception as exc:  # noqa: BLE001 - sorted out per request below
                if len(group) == 1 or isinstance(exc, Interrupted):  # Interrupted: every caller asked to stop
                    for r in group:
                        r.error = exc
                else:  # find whose prompts failed: each on its own
                    for r in group:
                        try:
                            r.result = self._call(r, [r])
                        except Exception as own:  # noqa: BLE001
                            r.error = own
            for r in group:
                r.done = True

    def _call(self, like: _Request, group: list[_Request]) -> list[Any]:
        """One call of the wrapped engine for `group`'s items. Made under a stop check that
        holds only when every caller in the group asked to stop (the calling thread's own check
        must not stop the others); row by row where the engine can (`stops_rows`)."""
        items = [item for r in group for item in r.items]
        checks = [r.stop for r in group]
        everyone = (lambda: all(c is not None and c() for c in checks)) if all(checks) else None
        with self._engine_lock, stop_scope(everyone):
            if everyone is not None and everyone():
                raise Interrupted("every caller of this call asked to stop before it reached the engine")
            self.engine_calls += 1
            self.batch_sizes.append(len(items))
            if like.kind == "generate":
                kwargs: dict[str, Any] = {}
                sinks = [s for r in group for s in _sinks(r)]
                if any(sinks):
                    kwargs["stream_to"] = sinks
                if getattr(self.inner, "stops_rows", False):
                    kwargs["stop_when"] = [r.stop for r in group for _ in r.items]
                return self.inner.generate(items, like.params, **kwargs)
            texts, contexts = zip(*items)
            return self.inner.score(list(texts), list(contexts))


def _sinks(request: _Request) -> list[TextSink | None]:
    return request.sinks if request.sinks is not None else [None] * len(request.items)
