"""Reading that needs more than one lookup, and questions that offer their answers, with the real model."""

from __future__ import annotations

import pytest

from ctxagent.agent import ContextAgent
from ctxagent.evaluation import build_task
from ctxagent.evaluation.scoring import score_task
from ctxagent.grounding import check_answer
from ctxagent.recipes.arithmetic import compute, operation
from ctxagent.recipes.options import choices_of, picked, states_claim
from ctxagent.recipes.reading import COMPUTED_NOTE, NOT_FOUND, OPTION_NOTE, VERDICT_NOTE, parse_reply
from ctxagent.types import Budget, Document
from tests.fakes import ScriptedEngine

FACTS = ["Theda Marchbanks owns a flock of 38 sheep.", "Ivo Marchetti owns a flock of 31 sheep.", "The fair was held in 1881."]


def test_a_total_or_difference_is_computed_from_one_stated_quantity_per_named_thing():
    total = compute("How many sheep do Theda Marchbanks and Ivo Marchetti have together?", FACTS)
    assert total is not None and total.text == "69 (38 + 31 = 69)" and total.facts == [0, 1]
    more = compute("How many more sheep does Theda Marchbanks have than Ivo Marchetti?", FACTS)
    assert more is not None and more.text.startswith("7 ") and "38 - 31 = 7" in more.text
    for q in ("How many sheep does Theda Marchbanks own?", "Who owns more sheep?"):
        assert operation(q) is None or compute(q, FACTS) is None
    # The shown computation is checked like any answer: operands stated, arithmetic right.
    q = "How many sheep do Theda Marchbanks and Ivo Marchetti have together?"
    assert check_answer(total.text, FACTS, q).supported
    assert not check_answer("70 (38 + 31 = 70)", FACTS, q).supported
    assert not check_answer("95 (64 + 31 = 95)", FACTS, q).supported  # an operand no fact states


def test_a_paraphrased_facts_used_line_is_read_and_cut_off():
    """Qwen2.5-Coder-0.5B writes the instruction in its own words; its fact numbers are not specifics."""
    reply = parse_reply("The owner of the indigo carriage was born in the village of Wrexley. The numbers of the facts used are 1 and 2.", 3)
    assert reply.text == "The owner of the indigo carriage was born in the village of Wrexley." and reply.claimed == [0, 1]


def test_list_numbers_of_facts_a_model_writes_back_assert_nothing():
    facts = ["The emerald carriage in the square belongs to Corwin Ellery.", "Corwin Ellery was born in the village of Thornwick."]
    reply = "The owner of the emerald carriage is Corwin Ellery, born in Thornwick. The emerald carriage in the square belongs to Corwin Ellery.\n2. Corwin Ellery was bor"
    assert check_answer(reply, facts, "What is the birthplace of the owner of the emerald carriage?").supported
    assert not check_answer("42.", facts, "How old is he?").supported  # a one-line number is still a number


def test_choice_and_yes_no_questions_are_recognised_and_their_picks_read():
    mc = choices_of("What kind of pet does Oswin keep? (A) a tortoise (B) a parrot (C) a goat (D) an owl. Answer with the letter of the right option.")
    assert mc and mc.kind == "choice" and mc.texts == ["a tortoise", "a parrot", "a goat", "an owl"] and mc.stem == "What kind of pet does Oswin keep?"
    assert picked(mc, "B) a parrot") == 1 and picked(mc, "The answer is (C).") == 2 and picked(mc, "He keeps a goat.") == 2 and picked(mc, NOT_FOUND) is None
    yn = choices_of("Is the rowing boat of Ilse Dunmore painted green? Answer yes or no.")
    assert yn and yn.kind == "yes_no" and picked(yn, "No, it is blue.") == 1 and picked(yn, "The boat is green. The answer is yes.") == 0
    assert choices_of("Who mended the bell?") is None
    assert choices_of("Is the flag blue or green?") is None  # asks which, not whether
    assert choices_of("True or false: the boat is green.").kind == "yes_no"


@pytest.mark.parametrize("reply", ["NOT FOUND", "The text does not say.", "E) a hamster"])
def test_a_choice_question_never_gets_not_found(reply, engine):
    """Whatever the model replies, a choice question gets an option, cited; here the evidence names the tortoise."""
    text = "The old harbour was quiet that spring. Oswin Thackery keeps a pet tortoise named Biscuit. The fair opened in May."
    fake = ScriptedEngine(reply=lambda prompt: reply, context_window=1024)
    fake.count_tokens = engine.count_tokens  # type: ignore[method-assign]
    fake.score = engine.score  # type: ignore[method-assign]  # the real model's log-probs choose
    question = "What kind of pet does Oswin Thackery keep? (A) a parrot (B) a goat (C) a tortoise (D) an owl. Answer with the letter of the right option."
    answer = ContextAgent(engine=fake).ask(Document(id="d", text=text), question, recipe="retrieve_then_reason")
    assert answer.text == "C) a tortoise", answer.notes
    assert answer.citations and "tortoise" in answer.citations[0].quote
    assert any(n.startswith(OPTION_NOTE) for n in answer.notes)
    assert answer.basis == "option", "an option the evidence favours, not a statement its citations make"


LIGHTHOUSE = "The lighthouse was built in 1872 by the engineer Ada Moss."


@pytest.mark.parametrize(
    "question,stated",
    [
        ("Was the lighthouse built in 1872?", True),
        ("Did Ada Moss build the lighthouse?", True),  # another voice, the same claim
        ("True or false: the lighthouse was built in 1872.", True),
        ("Was the lighthouse built in 1890?", False),  # a number the passage does not state
        ("Was the lighthouse built by John Moss?", False),  # a name it does not state
        ("Was the lighthouse demolished in 1872?", False),  # a word it does not state
        ("Was the lighthouse built before 1872?", False),
        ("Was the lighthouse not built in 1872?", False),  # a negated question
    ],
)
def test_a_passage_states_a_yes_no_claim_only_when_it_says_all_of_it(question, stated):
    assert states_claim(choices_of(question).stem, LIGHTHOUSE) is stated


def test_a_negated_or_hedged_passage_states_no_claim():
    question = "Was the lighthouse built in 1872?"
    assert not states_claim(question, "The lighthouse was not built in 1872.")
    assert not states_claim(question, "The lighthouse may have been built in 1872.")
    assert not states_claim(question, "If the lighthouse was built in 1872, it is the oldest.")
    assert not states_claim("Was the lighthouse blue?", "The lighthouse's blueprint hangs in the museum.")  # a word, not its stem
    assert states_claim("Was Ada Moss's lighthouse built in 1872?", "Ada Moss's lighthouse was built in 1872.")
    # Real prose (Pride and Prejudice, ch. 3): a report of a plan, which the next sentences undo (he brought five).
    report = "and a report soon followed that Mr. Bingley was to bring twelve ladies and seven gentlemen with him to the assembly."
    assert not states_claim("Did Mr. Bingley bring twelve ladies to the assembly?", report)
    lively = "he was lively and unreserved, danced every dance, was angry that the ball closed so early"
    assert states_claim("Was Mr. Bingley lively and unreserved?", "Mr. Bingley had soon made himself acquainted with all the principal people in the room; " + lively)


TOWN = "The harbour town of Verrin lies on the north coast. " + LIGHTHOUSE + " Every spring the town holds a fair."


def _ask_scripted(reply: str, question: str, recipe: str):
    fake = ScriptedEngine(reply=lambda prompt: reply, context_window=1024)
    return ContextAgent(engine=fake).ask(Document(id="d", text=TOWN), question, recipe=recipe)


@pytest.mark.parametrize("recipe", ["direct", "retrieve_then_reason"])
def test_a_yes_no_answer_is_stated_only_where_a_passage_states_its_claim(recipe):
    """A passage states the claim: the model's "No" is refused for "Yes", cited with that passage,
    basis `stated` (no scoring call needed). No passage states it: the model's verdict stands, but
    its basis is `option` and a note says the citations do not state it."""
    wrong = _ask_scripted("No.", "Was the lighthouse built in 1872?", recipe)
    assert wrong.text == "Yes" and wrong.basis == "stated", wrong.notes
    assert [c.quote for c in wrong.citations][:1] == [LIGHTHOUSE]
    right = _ask_scripted("Yes.", "Does the town hold a fair every spring?", recipe)
    assert right.text == "Yes." and right.basis == "stated" and any("holds a fair" in c.quote for c in right.citations)
    unstated = _ask_scripted("Yes.", "Was the lighthouse painted red in 1872?", recipe)
    assert unstated.text == "Yes." and unstated.basis == "option" and VERDICT_NOTE in unstated.notes


def _run(engine, kind: str, seeds: range, recipe: str = "auto") -> list[float]:
    agent = ContextAgent(engine=engine)
    scores = []
    for seed in seeds:
        task = build_task(kind, 2048, 0.5, engine.count_tokens, seed=seed)
        answer = agent.ask(Document(id=task.id, text=task.context), task.question, recipe=recipe, budget=Budget(max_new_tokens=64))
        assert answer.text != NOT_FOUND, (kind, task.question)
        scores.append(score_task(answer.text, task.answers, task.metric, task.scoring, task.options).score)
    return scores


def test_the_embedded_model_answers_arithmetic_over_two_facts_with_the_computation_shown(engine_2k):
    """SmolLM2 at 2048 tokens (the window capped there, so the recipes read in pieces)."""
    agent = ContextAgent(engine=engine_2k)
    for seed in range(2):
        task = build_task("arithmetic", 2048, 0.3, engine_2k.count_tokens, seed=seed)
        answer = agent.ask(Document(id=task.id, text=task.context), task.question, recipe="auto", budget=Budget(max_new_tokens=64))
        assert score_task(answer.text, task.answers, task.metric, task.scoring).score == 1.0, (task.question, answer.text, answer.notes)
        assert "=" in answer.text or any(n.startswith(COMPUTED_NOTE) for n in answer.notes) or task.answers[0] in answer.text
        assert answer.basis == ("computed" if any(n.startswith(COMPUTED_NOTE) for n in answer.notes) else "stated")
        assert check_answer(answer.text, [c.quote for c in answer.citations], task.question).supported


def test_the_embedded_model_gets_choice_and_yes_no_questions_right_from_the_evidence(engine_2k):
    assert sum(_run(engine_2k, "multiple_choice", range(3))) >= 2
    assert sum(_run(engine_2k, "yes_no", range(4))) >= 3
