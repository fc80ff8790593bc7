"""A scripted engine for unit tests of control flow (budgets, planning). Never used to claim a feature works."""

from __future__ import annotations

from typing import Callable, Sequence

from ctxagent.engines.base import Completion, Prompt, SamplingParams, TokenScores, render_messages


class ScriptedEngine:
    """Answers each prompt with `reply(prompt_text)`; one token per whitespace-separated word."""

    name = "scripted"

    def __init__(self, reply: Callable[[str], str] = lambda prompt: "scripted answer", context_window: int = 2048) -> None:
        self.reply = reply
        self._context_window = context_window
        self.calls: list[list[str]] = []

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None) -> list[Completion]:
        texts = ["\n".join(m["content"] for m in render_messages(p)) for p in prompts]
        self.calls.append(texts)
        outs = [self.reply(t) for t in texts]
        return [Completion(text=o, prompt_tokens=self.count_tokens(t), completion_tokens=self.count_tokens(o)) for t, o in zip(texts, outs)]

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        return [TokenScores(text=t, offsets=[], logprobs=[]) for t in texts]
