"""The public data model: what goes into ctxagent and what comes out.

Everything a user passes in or gets back is one of these pydantic models, so it
validates on the way in and serialises to JSON on the way out (the CLI, the batch
runner and LangGraph state all rely on that). This module imports nothing from
ctxagent but its defaults, so every subsystem can depend on it.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ctxagent.defaults import INTERACTIVE_MAX_SECONDS, MAX_NEW_TOKENS  # noqa: F401 - INTERACTIVE_MAX_SECONDS is public here too


class Document(BaseModel):
    """A source text. `id` names it in citations; `text` is the exact text cited."""

    id: str
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Key for cached artifacts (indexes, summary trees): same text, same key."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:32]


class Chunk(BaseModel):
    """A contiguous span of a document: `text == document.text[start:end]` always holds."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    index: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    n_tokens: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _span_matches_text(self) -> "Chunk":
        if self.end - self.start != len(self.text):
            raise ValueError(
                f"chunk {self.doc_id}#{self.index}: span {self.start}:{self.end} "
                f"has length {self.end - self.start} but text has {len(self.text)} characters"
            )
        return self




class Budget(BaseModel):
    """Limits a recipe must stay within; `None` means no limit on that axis.

    `Budget()` has no time limit; the interactive entry points default to
    `max_seconds=INTERACTIVE_MAX_SECONDS`, and `auto` plans within it.
    """

    max_tokens: int | None = Field(default=None, gt=0, description="prompt + completion tokens over all engine calls")
    max_calls: int | None = Field(default=None, gt=0, description="engine calls (one batched call counts once)")
    max_seconds: float | None = Field(default=None, gt=0, description="wall-clock seconds; auto picks a plan that fits at the engine's measured speed")
    max_new_tokens: int = Field(default=MAX_NEW_TOKENS, gt=0, description="completion length of the final answer")
    max_hops: int = Field(
        default=2,
        ge=0,
        description="follow-up searches a recipe may make to follow a chain of facts (fact A names B, B holds the answer); 0 turns chain following off",
    )


class Citation(BaseModel):
    """An exact quote from a source document: `document.text[start:end] == quote`."""

    doc_id: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str
    page: int | None = Field(default=None, ge=1, description="PDF page (1-based) where the quote starts; None for unpaged formats")

    @model_validator(mode="after")
    def _span_matches_quote(self) -> "Citation":
        if self.end - self.start != len(self.quote):
            raise ValueError(f"citation span {self.start}:{self.end} does not match a quote of {len(self.quote)} characters")
        return self


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    engine_calls: int = 0
    seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            engine_calls=self.engine_calls + other.engine_calls,
            seconds=self.seconds + other.seconds,
        )


class TraceStep(BaseModel):
    """One step a recipe took, with why; `detail` holds small JSON-able facts only."""

    name: str
    detail: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0


class Trace(BaseModel):
    steps: list[TraceStep] = Field(default_factory=list)
    # Told of each step as it is added, so a streamed run can report progress (not serialised).
    _listener: Callable[[TraceStep], None] | None = PrivateAttr(default=None)

    def add(self, name: str, seconds: float = 0.0, **detail: Any) -> TraceStep:
        step = TraceStep(name=name, detail=detail, seconds=seconds)
        self.steps.append(step)
        if self._listener is not None:
            self._listener(step)
        return step


class Question(BaseModel):
    text: str

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty: pass the question to ask about the document")
        return value.strip()


# The answer text when the documents say nothing about the question.
NOT_FOUND = "NOT FOUND"

# How an answer stands to its citations (Answer.basis).
Basis = Literal["stated", "computed", "option", "quote", "none"]


class Answer(BaseModel):
    text: str
    citations: list[Citation] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    trace: Trace = Field(default_factory=Trace)
    recipe: str = ""
    partial: bool = Field(default=False, description="true when the budget ran out before the recipe finished")
    notes: list[str] = Field(default_factory=list, description="what the user should know, e.g. how the input was truncated")
    basis: Basis | None = Field(
        default=None,
        description=(
            "how the answer stands to its citations: `stated`, the cited passages state it (checked: its numbers, dates "
            "and names, or a yes/no question's whole claim); `computed`, computed from numbers the cited passages state (the expression is in notes); "
            "`option`, the choice or yes/no option the cited passages favour most, which they need not state; "
            "`quote`, no checked answer, so the text is the best verified passage itself; `none`, no answer (NOT FOUND, "
            "or the budget ran out first). Unset where a recipe does not say (a user's own recipe)."
        ),
    )

    @model_validator(mode="after")
    def _no_answer_has_no_basis(self) -> "Answer":
        # Whatever a recipe says, an empty answer or NOT FOUND rests on nothing.
        if self.text.strip() in ("", NOT_FOUND):
            self.basis = "none"
        return self


# -- streamed events: what `ContextAgent.stream` / `astream` yield, in order -----------------
class PlanEvent(BaseModel):
    """The recipe that will answer, and why (auto's choice, or the one asked for)."""

    type: Literal["plan"] = "plan"
    recipe: str
    why: str = ""


class StepEvent(BaseModel):
    """A step the recipe took (a trace step, as it happens)."""

    type: Literal["step"] = "step"
    name: str
    detail: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0


class TokenEvent(BaseModel):
    """A piece of the answer as the model writes it. Always a draft: the answer is checked
    against its citations afterwards and may be replaced; only AnswerEvent is authoritative."""

    type: Literal["token"] = "token"
    text: str
    draft: bool = True


class AnswerEvent(BaseModel):
    """The final, checked Answer; always the last event of a run."""

    type: Literal["answer"] = "answer"
    answer: Answer


Event = Annotated[Union[PlanEvent, StepEvent, TokenEvent, AnswerEvent], Field(discriminator="type")]
