"""The state ctxagent's LangGraph nodes read and write, and how to rename its keys.

`DocQAState` is a pydantic model, so a checkpointer can save it between nodes and a
run can resume after an interruption. Nodes also work on a user's own state (a
pydantic model, a dataclass or a TypedDict dict) that holds these fields under
other names: pass `keys={"question": "user_query", ...}` to a node factory.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from pydantic import BaseModel, Field

from ctxagent.types import Answer, Budget, Chunk, Citation, Document, Trace, Usage


class FactRecord(BaseModel):
    """A verified quote found while reading (the recipes' `Fact`, as state a checkpoint can hold)."""

    citation: Citation
    relevance: float
    chunk: int = -1
    about: bool = False  # about the question in other words (recipes/evidence.py: a paraphrase the encoder singled out)


class DocQAState(BaseModel):
    """Everything a document-QA run carries from node to node (all JSON-serialisable)."""

    question: str = ""
    sources: list[str] = Field(default_factory=list, description="file paths for the load node to read")
    documents: list[Document] = Field(default_factory=list, description="loaded documents (or pass them in directly)")
    budget: Budget = Field(default_factory=Budget)
    plan: str = Field(default="", description="recipe the plan node chose, e.g. 'direct'")
    plan_options: dict[str, Any] = Field(default_factory=dict, description="options the plan gives its recipe")
    plan_reason: str = ""
    chunks: list[Chunk] = Field(default_factory=list, description="retrieved chunks, best first")
    context: str = Field(default="", description="text the answer node puts in the prompt")
    regions: list[tuple[str, int, int]] = Field(default_factory=list, description="(doc id, start, end) spans the context came from")
    facts: list[FactRecord] = Field(default_factory=list, description="verified quotes from the extract node")
    notes: list[str] = Field(default_factory=list)
    answer: Answer | None = None
    unverified: list[Citation] = Field(default_factory=list, description="citations the verify node rejected")
    usage: Usage = Field(default_factory=Usage)
    trace: Trace = Field(default_factory=Trace)


@dataclass(frozen=True)
class Keys:
    """Where each logical field lives in the graph's state (the default: the same name)."""

    question: str = "question"
    sources: str = "sources"
    documents: str = "documents"
    budget: str = "budget"
    plan: str = "plan"
    plan_options: str = "plan_options"
    plan_reason: str = "plan_reason"
    chunks: str = "chunks"
    context: str = "context"
    regions: str = "regions"
    facts: str = "facts"
    notes: str = "notes"
    answer: str = "answer"
    unverified: str = "unverified"
    usage: str = "usage"
    trace: str = "trace"

    @classmethod
    def of(cls, keys: "Keys | Mapping[str, str] | None") -> "Keys":
        if keys is None:
            return cls()
        if isinstance(keys, Keys):
            return keys
        known = {f.name for f in fields(cls)}
        unknown = set(keys) - known
        if unknown:
            from ctxagent.errors import InputError

            raise InputError(f"unknown state keys {sorted(unknown)}; the nodes use: {', '.join(sorted(known))}")
        return replace(cls(), **dict(keys))


_DEFAULTS = DocQAState()


def read(state: Any, keys: Keys, name: str) -> Any:
    """The value of logical field `name` in a pydantic/dataclass or dict state, or its default."""
    key = getattr(keys, name)
    value = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
    if value is None:
        return getattr(_DEFAULTS, name)
    field_type = DocQAState.model_fields[name].annotation
    # Dict states and checkpoints may hold plain dicts where models belong; rebuild them.
    if name in ("budget", "usage", "trace") and isinstance(value, Mapping):
        return field_type.model_validate(value)  # type: ignore[union-attr]
    if name == "answer" and isinstance(value, Mapping):
        return Answer.model_validate(value)
    if name in ("documents", "chunks", "unverified", "facts") and value and isinstance(value[0], Mapping):
        model = {"documents": Document, "chunks": Chunk, "unverified": Citation, "facts": FactRecord}[name]
        return [model.model_validate(v) for v in value]
    return value


def update(keys: Keys, **values: Any) -> dict[str, Any]:
    """A node's return value: logical names mapped to the graph's own keys."""
    return {getattr(keys, name): value for name, value in values.items()}
