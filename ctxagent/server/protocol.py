"""The OpenAI wire format: request models that validate on the way in, payloads on the way out.

Only what ctxagent needs is declared; unknown request fields are accepted and ignored, as
OpenAI-compatible servers do, so clients that send `n=1`, `user=...` or tool lists still work.
The answer's citations, usage, recipe and notes travel in an extra top-level field,
`ctxagent`, which the `openai` client keeps (`response.ctxagent` or `model_extra`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ctxagent.types import Answer, Budget


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, value: str | list[dict[str, Any]] | None) -> str | list[dict[str, Any]] | None:
        if isinstance(value, list) and any(part.get("type") != "text" for part in value):
            raise ValueError("only text content parts are supported")
        return value

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    # ctxagent's own fields (sent with the openai client's `extra_body`)
    documents: list[str | dict[str, Any]] | None = Field(default=None, description="documents, when not in the messages")
    budget: Budget | None = Field(default=None, description="limits for the recipe; max_seconds is capped by the server's timeout")
    recipe_options: dict[str, Any] = Field(default_factory=dict, description="options for the recipe, e.g. {'retriever': 'bm25'}")

    def new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def plain_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(BaseModel):
    """The legacy completions API, kept for the `openai` engine's prompt log-probs (`echo`)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    echo: bool = False
    logprobs: int | None = None


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str
    model: str | None = None


# -- payloads ---------------------------------------------------------------------------------
def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def error_body(message: str, kind: str, code: str | int | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which its clients turn into typed exceptions."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def answer_extra(answer: Answer, rule: str) -> dict[str, Any]:
    """The `ctxagent` field: what an answer is worth beyond its text."""
    return {
        "citations": [c.model_dump() for c in answer.citations],
        "usage": answer.usage.model_dump(),
        "recipe": answer.recipe,
        "partial": answer.partial,
        "notes": list(answer.notes),
        "basis": answer.basis,
        "split": rule,
    }


def finish_reason(answer: Answer) -> str:
    return "length" if answer.partial else "stop"


def chat_completion(cid: str, model: str, content: str, finish: str, usage: dict[str, int], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }
    if extra is not None:
        body["ctxagent"] = extra
    return body


def chat_chunk(cid: str, model: str, delta: dict[str, Any] | None, finish: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One streamed chunk; `delta=None` gives the usage-only chunk (no choices) OpenAI sends last."""
    body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    if extra is not None:
        body["ctxagent"] = extra
    return body
