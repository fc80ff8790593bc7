"""The run context: the one door through which a recipe reaches the engine.

Every engine call goes through `RunContext`, which checks the Budget before the
call, counts tokens, calls and seconds after it, and records a trace step. So
recipes never do their own accounting, and they cannot overspend by accident:
a call that would break the budget raises `BudgetExhausted` before it is made,
and the recipe turns that into a partial Answer.

It is also where a streamed run listens: with `on_event` set, every trace step is
reported as it happens (the `plan` step as a PlanEvent), and the engine call of an
answer step (`ANSWER_STEPS`) streams the model's text as draft TokenEvents when the
engine can stream. Recipes stay unaware of streaming.

And it is where a run stops: `cancel` (by default the token of the `cancel_scope` the run
was started in, see ctxagent/cancel.py) is checked before every engine call, and each call
is made with a stop check, so engines that can stop mid-call (hf: between generated tokens
and between batches) stop once the token is cancelled or the time budget is spent. A
cancelled run raises `Cancelled`, which no recipe catches; a call cut short by the time
budget raises `BudgetExhausted`, which recipes turn into a partial answer.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ctxagent.cancel import CancelToken, Cancelled, Interrupted, current_token, stop_scope
from ctxagent.engines.base import STOPPED, Completion, Engine, Prompt, SamplingParams, TokenScores, render_messages, streams
from ctxagent.errors import BudgetExhausted
from ctxagent.types import Answer, Basis, Budget, Citation, Event, PlanEvent, StepEvent, TokenEvent, Trace, TraceStep, Usage

# The reading time of a call is estimated this much longer than the engine's recent pace: the
# pace moves with the machine's load, and a call that starts must finish reading in time.
READING_MARGIN = 1.25

# Steps whose engine call writes the final answer (the draft the answer check then judges).
ANSWER_STEPS = frozenset({"answer"})


@dataclass
class RunContext:
    engine: Engine
    budget: Budget = field(default_factory=Budget)
    trace: Trace = field(default_factory=Trace)
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.perf_counter)
    on_event: Callable[[Event], None] | None = None
    cancel: CancelToken | None = field(default_factory=current_token)
    _speed_pace: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.on_event is not None:
            self.trace._listener = self._report_step

    def _report_step(self, step: TraceStep) -> None:
        assert self.on_event is not None
        if step.name == "plan":
            self.on_event(PlanEvent(recipe=str(step.detail.get("recipe", "")), why=str(step.detail.get("why", ""))))
        else:
            self.on_event(StepEvent(name=step.name, detail=step.detail, seconds=step.seconds))

    def _draft_sink(self, step: str) -> Callable[[str], None] | None:
        """Where the answer step's text goes as it is written, when someone listens and the engine streams."""
        on_event = self.on_event
        if on_event is None or step not in ANSWER_STEPS or not streams(self.engine):
            return None
        return lambda text: on_event(TokenEvent(text=text))

    # -- budget -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def calls_left(self) -> int | None:
        return None if self.budget.max_calls is None else self.budget.max_calls - self.usage.engine_calls

    def tokens_left(self) -> int | None:
        return None if self.budget.max_tokens is None else self.budget.max_tokens - self.usage.total_tokens

    def should_stop(self) -> bool:
        """Stop now? The engine's check during a call: cancelled, or out of time."""
        if self.cancel is not None and self.cancel.cancelled:
            return True
        return self.budget.max_seconds is not None and self.elapsed() >= self.budget.max_seconds

    def out_of_time(self) -> bool:
        """For recipes' own long loops (no engine call in them): is the time budget spent?"""
        return self.budget.max_seconds is not None and self.elapsed() >= self.budget.max_seconds

    @contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Within the block, the run's time budget ends `seconds` from its start (never later than
        the budget's own end): a long step (building a tree) takes its share and leaves the rest
        for the steps after it. None: no change."""
        if seconds is None or self.budget.max_seconds is None:
            yield
            return
        whole = self.budget
        self.budget = whole.model_copy(update={"max_seconds": min(seconds, whole.max_seconds)})
        try:
            yield
        finally:
            self.budget = whole

    def raise_if_stopped(self, upcoming: float = 0.0) -> None:
        """Raise Cancelled or BudgetExhausted("seconds") if the run must stop now, or would run
        out of time in the next `upcoming` seconds (the `checkpoint()` of long steps that are
        not engine calls)."""
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        if self.budget.max_seconds is not None and self.elapsed() + upcoming >= self.budget.max_seconds:
            raise BudgetExhausted("seconds", self.budget.max_seconds, round(self.elapsed(), 2))

    def _stopped(self) -> Exception:
        """Why an engine call was cut short: the run was cancelled, or its time ran out."""
        if self.cancel is not None and self.cancel.cancelled:
            return Cancelled(self.cancel.reason)
        assert self.budget.max_seconds is not None
        return BudgetExhausted("seconds", self.budget.max_seconds, round(self.elapsed(), 2))

    def reading_seconds(self, prompt_tokens: int) -> float:
        """About how long the engine takes to read `prompt_tokens` (which cannot be stopped
        part-way): at the pace it showed lately in this process (hf's `prefill_pace`), else
        at its measured or assumed speed (ctxagent/engines/speed.py)."""
        pace = getattr(self.engine, "prefill_pace", None)
        if not isinstance(pace, (int, float)) or pace <= 0:
            if self._speed_pace is None:
                from ctxagent.engines.speed import engine_speed

                self._speed_pace = 1.0 / engine_speed(self.engine, probe=False).prefill_tokens_per_second
            pace = self._speed_pace
        return prompt_tokens * float(pace)

    def check_time(self, prompt_tokens: int) -> None:
        """Raise BudgetExhausted("seconds") when reading `prompt_tokens` would outlast the time budget:
        a call is not started if it could not finish reading in time."""
        if self.budget.max_seconds is None:
            return
        expected = self.elapsed() + READING_MARGIN * self.reading_seconds(prompt_tokens)
        if expected > self.budget.max_seconds:
            self.trace.add("time_left_too_short", prompt_tokens=prompt_tokens, expected_end=round(expected, 2))
            raise BudgetExhausted("seconds", self.budget.max_seconds, round(self.elapsed(), 2))

    def check(self, planned_tokens: int = 0) -> None:
        """Raise Cancelled if the run was cancelled, BudgetExhausted if one more engine call
        costing `planned_tokens` would overspend."""
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        b, u = self.budget, self.usage
        if b.max_calls is not None and u.engine_calls + 1 > b.max_calls:
            raise BudgetExhausted("engine calls", b.max_calls, u.engine_calls)
        if b.max_seconds is not None and self.elapsed() >= b.max_seconds:
            raise BudgetExhausted("seconds", b.max_seconds, round(self.elapsed(), 2))
        if b.max_tokens is not None and u.total_tokens + planned_tokens > b.max_tokens:
            raise BudgetExhausted("tokens", b.max_tokens, u.total_tokens + planned_tokens)

    # -- engine access ------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def prompt_tokens(self, prompt: Prompt) -> int:
        """Tokens of a prompt's content (the chat template adds a few more)."""
        return sum(self.engine.count_tokens(m["content"]) for m in render_messages(prompt))

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *, step: str, **detail: Any) -> list[Completion]:
        """One batched engine call, counted as one call against the budget."""
        params = params or SamplingParams(max_new_tokens=self.budget.max_new_tokens)
        planned = 0
        if self.budget.max_tokens is not None or self.budget.max_seconds is not None:
            reading = sum(self.prompt_tokens(p) for p in prompts)
            planned = reading + params.max_new_tokens * len(prompts)
        self.check(planned if self.budget.max_tokens is not None else 0)
        if self.budget.max_seconds is not None:
            self.check_time(reading)
        began = time.perf_counter()
        sink = self._draft_sink(step)
        try:
            with stop_scope(self.should_stop):
                if sink is not None:
                    completions = self.engine.generate(list(prompts), params, stream_to=[sink] * len(prompts))  # type: ignore[call-arg]
                else:
                    completions = self.engine.generate(list(prompts), params)
        except Interrupted:
            raise self._stopped() from None
        if any(c.finish_reason == STOPPED for c in completions):  # cut short: not an answer to use
            raise self._stopped()
        seconds = time.perf_counter() - began
        prompt_tokens = sum(c.prompt_tokens for c in completions)
        completion_tokens = sum(c.completion_tokens for c in completions)
        self.usage = self.usage.add(Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, engine_calls=1, seconds=seconds))
        self.trace.add(step, seconds=round(seconds, 3), prompts=len(prompts), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, **detail)
        return completions

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None, *, step: str, **detail: Any) -> list[TokenScores]:
        """One batched scoring call (log-probs), counted like a generation without new tokens: the
        model reads every context and text, so all of them count as prompt tokens."""
        tokens = sum(self.engine.count_tokens(t) for t in texts) + sum(self.engine.count_tokens(c) for c in contexts or [])
        self.check(tokens)
        self.check_time(tokens)
        began = time.perf_counter()
        try:
            with stop_scope(self.should_stop):
                scores = self.engine.score(list(texts), list(contexts) if contexts is not None else None)
        except Interrupted:
            raise self._stopped() from None
        seconds = time.perf_counter() - began
        self.usage = self.usage.add(Usage(prompt_tokens=tokens, engine_calls=1, seconds=seconds))
        self.trace.add(step, seconds=round(seconds, 3), texts=len(texts), **detail)
        return scores

    # -- result -------------------------------------------------------------------------
    def answer(
        self,
        text: str,
        *,
        recipe: str,
        citations: Sequence[Citation] = (),
        partial: bool = False,
        notes: Sequence[str] = (),
        basis: Basis | None = None,
    ) -> Answer:
        """The run's Answer; `basis` says how the text stands to the citations (Answer.basis)."""
        usage = self.usage.model_copy(update={"seconds": round(self.elapsed(), 3)})
        return Answer(text=text, citations=list(citations), usage=usage, trace=self.trace, recipe=recipe, partial=partial, notes=list(notes), basis=basis)
