"""A time budget is a promise: every recipe, on a document ten times the window, returns within
110% of `max_seconds=10`, flagged partial when it was cut short (the real embedded model with
its window capped at 2048 tokens, so that 10x stays a CPU-sized test)."""

from __future__ import annotations

import time

import pytest

from ctxagent import ContextAgent
from ctxagent.recipes import registry
from ctxagent.types import Budget, Document
from tests.texts import text_with_fact

pytestmark = pytest.mark.slow

FACT = "The secret code to open the blue vault is 4817."
QUESTION = "What is the secret code to open the blue vault?"
SECONDS = 10.0
OPTIONS = {"memory_tree": {"cache": False}}  # build the tree inside the budget every time


@pytest.fixture(scope="module")
def long_document(engine_2k):
    return Document(id="persuasion", text=text_with_fact(FACT, engine_2k.count_tokens, 10 * engine_2k.context_window))


@pytest.fixture(scope="module")
def agent(engine_2k):
    agent = ContextAgent(engine=engine_2k)
    # Load the encoders once, outside the timings, and measure the engine's reading pace on this machine
    # now: `auto` probes it on first need, a one-off cost that does not count against max_seconds.
    ferry = Document(id="ferry", text=text_with_fact("The ferry leaves at seven.", engine_2k.count_tokens, 1500))
    agent.ask(ferry, "When does the ferry leave?", recipe="map_reduce")
    engine_2k.speed()
    return agent


@pytest.fixture(scope="module")
def runs() -> dict:
    """Each recipe's answer and wall seconds, run once (the tree test reads memory_tree's)."""
    return {}


def _run(agent, long_document, runs: dict, recipe: str):
    if recipe not in runs:
        began = time.perf_counter()
        answer = agent.ask(long_document, QUESTION, recipe=recipe, budget=Budget(max_seconds=SECONDS), **OPTIONS.get(recipe, {}))
        runs[recipe] = answer, time.perf_counter() - began
    return runs[recipe]


@pytest.mark.parametrize("recipe", sorted(registry.names()))
def test_every_recipe_returns_within_110_percent_of_its_time_budget(agent, long_document, runs, recipe):
    answer, wall = _run(agent, long_document, runs, recipe)
    one_off = sum(step.seconds for step in answer.trace.steps if step.name == "speed_probe")  # excluded by design (auto.py)
    seconds = wall - one_off
    assert seconds <= 1.1 * SECONDS, (recipe, round(seconds, 2), [(s.name, s.seconds) for s in answer.trace.steps])
    assert answer.usage.seconds <= 1.1 * SECONDS
    if not answer.partial:  # a whole answer within the budget must still be a right one or say it found nothing
        assert "4817" in answer.text or answer.citations == [], answer.text


def test_a_tree_cut_short_is_still_searched_and_flagged(agent, long_document, runs):
    answer, _ = _run(agent, long_document, runs, "memory_tree")  # built inside the budget (cache=False)
    steps = [s.name for s in answer.trace.steps]
    assert "tree:cut_short" in steps, steps
    assert answer.partial and any("cut the tree's summaries short" in n for n in answer.notes)
    tree_at = steps.index("tree")
    assert any(name.startswith(("navigate", "collapsed")) for name in steps[tree_at:]), steps  # searched after the cut
