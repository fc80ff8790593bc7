"""The grounding rule end to end, on the real embedded model and a real eval question (issue 25):
an answer whose specifics its citations do not support never comes back, whichever recipe ran."""

from __future__ import annotations

import pytest

from ctxagent.agent import ContextAgent
from ctxagent.evaluation.scoring import unsupported_specifics
from ctxagent.evaluation.tasks import build_task
from ctxagent.types import Budget, Document
from tests.grounded import assert_grounded


@pytest.mark.parametrize("recipe", ["retrieve_then_reason"])
def test_a_number_no_citation_states_does_not_pass_the_check(engine, recipe):
    # The A/B run's task (benchmarks/ab_direct.py builds it the same way): SmolLM2 answered "... the European
    # Council, which is composed of 75 members ...", and 75 passed as 17 + 3 + 55 of its facts' numbers, and
    # "European Council" as "European" of one fact and "Council" of another.
    task = build_task("squad", 6144, None, engine.count_tokens, seed=0, sample=3)
    assert task.question == "What is the main executive body of the EU?"
    answer = ContextAgent(engine=engine).ask(Document(id=task.id, text=task.context), task.question, recipe=recipe, budget=Budget(max_new_tokens=64))
    assert_grounded(answer, task.question)
    # The eval's own, independent reading of the same promise agrees.
    assert unsupported_specifics(answer.text, [c.quote for c in answer.citations], task.question) == [], answer.text
    refused = [s.detail for s in answer.trace.steps if s.name == "answer:refused"]
    assert refused and "75" in refused[0]["reply"], "the model's reply carrying 75 is refused and recorded"
    # Its "European Council" is refused too: the facts name the European Commission, and "Council" only in
    # another fact, and a name's words gathered from several facts name nothing.
    assert "European Council" in refused[0]["unsupported"], refused[0]
