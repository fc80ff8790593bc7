"""The Engine protocol: the one interface every LLM backend implements.

Recipes, compressors and the graph layer talk to an engine only through these
methods, so `hf`, `vllm`, `openai` and users' own backends are interchangeable.
Generation is batched on purpose: a recipe step hands over all of its prompts
at once and the backend decides how to batch them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from pydantic import BaseModel, Field

from ctxagent.defaults import MAX_NEW_TOKENS
from ctxagent.errors import InputError


class SamplingParams(BaseModel):
    max_new_tokens: int = Field(default=MAX_NEW_TOKENS, gt=0)
    temperature: float = Field(default=0.0, ge=0.0, description="0 means greedy decoding")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


Prompt = Sequence[Message] | str
"""A chat, or a string taken as one user message; rendered with the model's own chat template."""

TextSink = Callable[[str], None]
"""Receives a completion's text as it is written, a piece at a time (see `streams` below)."""


# finish_reason of a completion an engine cut short because the caller's stop check said so
# (ctxagent/cancel.py): its text is unfinished, and RunContext never hands it to a recipe.
STOPPED = "stopped"


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "stop" | "length" | STOPPED


@dataclass
class TokenScores:
    """Log-probabilities of each token of `text`, conditioned on the preceding context.

    `offsets[i]` is the (start, end) character span of token i within `text`, so a
    compressor can drop tokens and still map what it keeps back to the source.
    """

    text: str
    offsets: list[tuple[int, int]] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


@runtime_checkable
class Engine(Protocol):
    name: str

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to: prompt plus completion."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs with this engine's own tokenizer."""
        ...

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None) -> list[Completion]:
        """One completion per prompt, in order."""
        ...

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        """Per-token log-probs of each text given its context (empty context when None)."""
        ...

    # Beyond these four, an engine may offer the capabilities below (CAPABILITIES); none is
    # required, so a small user engine stays valid. Code asks for them only through the
    # helpers here and in speed.py, never by an engine's class.


# -- optional capabilities ------------------------------------------------------------------
# Each is a small protocol an engine meets by having the members; the runtime check tells.


@runtime_checkable
class Streaming(Protocol):
    """`generate(prompts, params, stream_to=[sink or None per prompt])` feeds each sink its
    completion's text as it is written; the engine says so with `streams = True`."""

    streams: bool

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *, stream_to: Sequence[TextSink | None] | None = None) -> list[Completion]: ...


@runtime_checkable
class MeasuresSpeed(Protocol):
    """`speed()`: prefill and decode tokens per second (ctxagent.engines.speed.EngineSpeed), measured
    once per model and machine and cached (hf, vllm and openai do it with `ProbedSpeed`); `auto` plans
    its time budget with it. `speed_key()`: what the measurement depends on (model, device, server)."""

    def speed(self) -> Any: ...

    def speed_key(self) -> str: ...


@runtime_checkable
class StatesSpeed(Protocol):
    """`tokens_per_second`: a prefill speed the engine states instead of measuring (else one is assumed)."""

    tokens_per_second: float


@runtime_checkable
class NamesModel(Protocol):
    """`model_name`: which model answers (cache keys, reports, the server's model list)."""

    model_name: str


@runtime_checkable
class HasTokenizer(Protocol):
    """`tokenizer`: the local model's own tokenizer (chat templates, token offsets)."""

    tokenizer: Any


# Every optional member an engine may have, by capability; wrappers (BatchingEngine) forward these.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "streaming": ("streams",),
    "measures_speed": ("speed", "speed_key"),
    "states_speed": ("tokens_per_second",),
    "names_model": ("model_name",),
    "has_tokenizer": ("tokenizer",),
}


def capabilities(engine: object) -> set[str]:
    """The CAPABILITIES `engine` has, asked of the object itself (a wrapper that forwards them has
    exactly its engine's; `isinstance` with the protocols above checks the class, not the object)."""
    return {name for name, members in CAPABILITIES.items() if all(getattr(engine, m, None) not in (None, False) for m in members)}


def streams(engine: object) -> bool:
    """Can `engine.generate` take `stream_to=[sink or None per prompt]` and feed each sink its
    completion's text as it is written? Engines that can say so with `streams = True`; with the
    others a caller gets the whole completion at the end, as before."""
    return bool(getattr(engine, "streams", False))


def model_name(engine: object) -> str:
    """The engine's model name, or "" when it does not say (NamesModel)."""
    return str(getattr(engine, "model_name", "") or "")


def render_messages(prompt: Prompt) -> list[dict[str, str]]:
    """Turn a Prompt into the list-of-dicts form chat templates and OpenAI servers take."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m.role, "content": m.content} for m in prompt]


def prompt_text(tokenizer: Any, prompt: Prompt) -> str:
    """A prompt as the text a local model reads: rendered with the tokenizer's chat template,
    or, for a base model without one, the messages' text as is."""
    if getattr(tokenizer, "chat_template", None) is None:
        return prompt if isinstance(prompt, str) else "\n\n".join(m.content for m in prompt)
    return tokenizer.apply_chat_template(render_messages(prompt), add_generation_prompt=True, tokenize=False)


def check_prompts_fit(encoded: Sequence[Sequence[int]], model_name: str, context_window: int, max_new_tokens: int) -> None:
    """Refuse, before any work, a prompt that leaves no room for its completion in the window."""
    limit = context_window - max_new_tokens
    for i, ids in enumerate(encoded):
        if len(ids) > limit:
            raise InputError(
                f"prompt {i} has {len(ids)} tokens but the {model_name} window of {context_window} "
                f"leaves {limit} after {max_new_tokens} new tokens: shorten it or use a recipe that chunks"
            )
