"""The run context enforces every budget axis before a call is made (control flow, scripted engine)."""

from __future__ import annotations

import pytest

from ctxagent.engines.base import SamplingParams
from ctxagent.errors import BudgetExhausted
from ctxagent.recipes import get_recipe
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import Budget, Document
from tests.fakes import ScriptedEngine


def test_call_limit_stops_before_the_extra_call():
    engine = ScriptedEngine()
    ctx = RunContext(engine=engine, budget=Budget(max_calls=2))
    ctx.generate(["a"], step="one")
    ctx.generate(["b", "c"], step="two")  # a batch counts as one call
    with pytest.raises(BudgetExhausted, match="engine calls"):
        ctx.generate(["d"], step="three")
    assert len(engine.calls) == 2 and ctx.usage.engine_calls == 2


def test_token_limit_counts_the_planned_completion():
    ctx = RunContext(engine=ScriptedEngine(), budget=Budget(max_tokens=50))
    with pytest.raises(BudgetExhausted, match="tokens"):
        ctx.generate(["five words in this prompt"], SamplingParams(max_new_tokens=46), step="big")
    ctx.generate(["five words in this prompt"], SamplingParams(max_new_tokens=10), step="small")
    assert ctx.usage.prompt_tokens == 5 and ctx.usage.completion_tokens == 2


def test_exhausted_budget_gives_a_partial_answer_not_an_exception():
    ctx = RunContext(engine=ScriptedEngine(), budget=Budget(max_calls=1))
    ctx.generate(["warm-up"], step="spend")
    answer = run_recipe(get_recipe("direct"), ctx, [Document(id="d", text="Some text.")], "What?")
    assert answer.partial and "engine calls" in answer.notes[0]
    assert answer.trace.steps[-1].name == "budget_exhausted"


def test_trace_and_usage_record_each_call():
    ctx = RunContext(engine=ScriptedEngine())
    ctx.generate(["x y", "z"], step="read", chunk=3)
    step = ctx.trace.steps[0]
    assert step.name == "read" and step.detail["prompts"] == 2 and step.detail["chunk"] == 3
    assert ctx.answer("t", recipe="r").usage.engine_calls == 1
