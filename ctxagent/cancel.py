"""Stopping work nobody waits for: a cancel token, and the stop check engines consult.

A server request whose client disconnected, or which hit its timeout, should stop at
the engine's next step instead of running its recipe to the end in a worker thread. The
server creates a `CancelToken` per request and opens `cancel_scope(token)` in the worker
thread that runs it; the `RunContext` made there picks the token up, so recipes need no
new argument.

Engines see one question only: "should this prompt stop now?". `RunContext` answers it
for its engine calls (`stop_scope`): yes once the token is cancelled or the run's time
budget is spent. Engines that can stop mid-call (`hf`, between generated tokens and
between batches) read `current_stop()`; `BatchingEngine` carries each caller's check with
its prompts into the merged call, so one cancelled request stops its own rows only.
Everything here uses context variables, so each thread (and asyncio task) has its own.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

from ctxagent.errors import CtxAgentError

StopCheck = Callable[[], bool]
"""True when the work it guards should stop now."""


class Cancelled(CtxAgentError):
    """The run was cancelled (its client left, its request timed out); nothing is returned.

    Not a `BudgetExhausted`: a recipe must not turn it into a partial answer and go on
    calling the engine; it propagates to whoever cancelled."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(f"run cancelled: {reason}")
        self.reason = reason


class Interrupted(CtxAgentError):
    """An engine stopped a call part-way because its stop check said so; the caller
    (`RunContext`) turns it into `Cancelled` or an exhausted time budget."""


class CancelToken:
    """Set once, from any thread, when the work should stop; `reason` says why."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason)


_token: ContextVar[CancelToken | None] = ContextVar("ctxagent_cancel_token", default=None)
_stop: ContextVar[StopCheck | None] = ContextVar("ctxagent_stop_check", default=None)


def current_token() -> CancelToken | None:
    """The token of the work running in this thread, if any."""
    return _token.get()


@contextmanager
def cancel_scope(token: CancelToken | None) -> Iterator[CancelToken | None]:
    """Work started inside the block (RunContexts made there) stops when `token` is cancelled."""
    reset = _token.set(token)
    try:
        yield token
    finally:
        _token.reset(reset)


def current_stop() -> StopCheck | None:
    """The stop check of the engine call being made in this thread (None: never stop)."""
    return _stop.get()


@contextmanager
def stop_scope(check: StopCheck | None) -> Iterator[None]:
    """Engine calls made inside the block may stop early once `check()` is true."""
    reset = _stop.set(check)
    try:
        yield
    finally:
        _stop.reset(reset)


_checkpoint: ContextVar[Callable[[float], None] | None] = ContextVar("ctxagent_checkpoint", default=None)


def checkpoint(upcoming: float = 0.0) -> None:
    """For long steps that are not engine calls (encoding every sentence of a document, say):
    call between pieces of work, with about how many seconds the next piece takes; it raises
    (Cancelled, or BudgetExhausted for time) when the run this thread works for must stop, or
    would run out of time during the next piece. Does nothing outside a run."""
    check = _checkpoint.get()
    if check is not None:
        check(upcoming)


class SlicePace:
    """How long the last slice of a repeated step took (in this process), so `piece()` stops
    before a slice that would not finish in time: one per kind of step, e.g. sentence encoding."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def piece(self) -> Iterator[None]:
        checkpoint(self.seconds)
        began = time.perf_counter()
        yield
        self.seconds = time.perf_counter() - began


@contextmanager
def checkpoint_scope(check: Callable[[float], None] | None) -> Iterator[None]:
    """`checkpoint()` calls inside the block call `check` (RunContext.raise_if_stopped)."""
    reset = _checkpoint.set(check)
    try:
        yield
    finally:
        _checkpoint.reset(reset)
