"""Exceptions that name the input, the limit and the fix."""

from __future__ import annotations


class CtxAgentError(Exception):
    """Base class: catch this to handle every ctxagent failure."""


class InputError(CtxAgentError, ValueError):
    """The user's input (file, question, option) cannot be used as given."""


class UnknownNameError(CtxAgentError, KeyError):
    """No engine, recipe, retriever or compressor is registered under that name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class EngineNotInstalled(CtxAgentError, ImportError):
    """A backend's optional dependency is missing; the message names the extra to install."""


class EngineError(CtxAgentError, RuntimeError):
    """The engine failed to answer (server down, out of memory, bad response)."""


class BudgetExhausted(CtxAgentError):
    """Raised inside a recipe when the Budget is spent; recipes turn it into a partial Answer."""

    def __init__(self, axis: str, limit: float, used: float) -> None:
        super().__init__(f"budget exhausted: {axis} limit {limit} reached ({used} used)")
        self.axis, self.limit, self.used = axis, limit, used
