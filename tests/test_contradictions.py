"""Short answers are checked on their content words: a value the cited fact contradicts is rejected."""

from __future__ import annotations

import pytest

from ctxagent.agent import ContextAgent
from ctxagent.grounding import check_answer
from ctxagent.types import Document
from ctxagent.word_classes import classes_of, contradiction
from tests.fakes import ScriptedEngine

# (question, the only fact, a contradicted answer, the right answer): planted contradictions of several kinds.
PLANTED = [
    ("What is the official colour of the Ebbingford rowing club?", "The official colour of the Ebbingford rowing club is green.", "Blue.", "Green."),
    ("What colour is the door of the mill?", "The door of the mill was painted a deep crimson.", "It is yellow.", "It is red."),
    ("What is the bell of the chapel made of?", "The bell of the chapel was cast in bronze in 1820.", "The bell is made of iron.", "Bronze."),
    ("What was the statue carved from?", "The statue in the square was carved from a single block of marble.", "Oak.", "Stone, a single block of marble."),
    ("What did Fenwick Hale do for a living?", "Fenwick Hale worked as a blacksmith in Pellmoor for thirty years.", "He was a baker.", "He was a farrier."),
    ("What was Greta Stolberg's profession?", "Greta Stolberg was a physician at the county infirmary.", "A lawyer.", "She was a doctor."),
    ("Where did Ivo Marchetti keep the letters?", "Ivo Marchetti kept the letters in a tin box in the cellar.", "In the attic.", "In the basement."),
    ("Where was the treaty signed?", "The treaty was signed in the chapel of the old castle.", "In the library.", "In a church."),
    ("Which animal pulled the cart?", "A grey donkey named Pippin pulled the cart to market.", "A horse.", "A mule."),
    ("On which day does the market open?", "The market in Oakmere opens every Thursday at dawn.", "On Saturday.", "Thursday."),
    ("Which instrument did Saskia Pellow play?", "Saskia Pellow played the violin in the town orchestra.", "The piano.", "The fiddle."),
]


@pytest.mark.parametrize("question,fact,wrong,right", PLANTED)
def test_a_value_the_fact_contradicts_is_rejected_and_the_stated_one_passes(question, fact, wrong, right):
    bad = check_answer(wrong, [fact], question)
    assert not bad.supported and bad.contradicted, (wrong, bad.supports)
    good = check_answer(right, [fact], question)
    assert good.supported, (right, good.unsupported)


@pytest.mark.parametrize(
    "answer,fact,question",
    [
        ("A broken chime.", "Oswin mended the cracked bell of the old harbour chapel.", "What did Oswin repair?"),  # paraphrase, no class word
        ("No, it is painted black.", "The rowing boat of Greta Stolberg is painted black.", "Is the rowing boat of Greta Stolberg painted purple?"),
        ("Yes.", "The rowing boat of Greta Stolberg is painted crimson.", "Is the rowing boat of Greta Stolberg painted red?"),
        ("A) a tortoise", "Oswin keeps a pet tortoise named Biscuit.", "What pet? (A) a tortoise (B) a parrot (C) a goat (D) an owl."),
        ("69, since 38 + 31 = 69.", "Theda keeps 38 sheep and Ivo keeps 31 sheep.", "How many sheep do Theda and Ivo have together?"),
        ("The keeper of the ochre lighthouse grew up in Marrowby.", "Ilse Dunmore grew up in the village of Marrowby.", "In which village did the keeper of the ochre lighthouse grow up?"),
        ("Mr Green.", "The blue door belongs to Mr Green.", "Who owns the blue door?"),  # a name, not a colour
    ],
)
def test_paraphrases_echoes_and_derived_answers_are_not_rejected(answer, fact, question):
    g = check_answer(answer, [fact], question)
    assert g.supported, g.unsupported


def test_affirming_a_question_the_fact_contradicts_is_rejected_wherever_the_verdict_is():
    fact = "The rowing boat of Greta Stolberg is painted black."
    question = "Is the rowing boat of Greta Stolberg painted purple? Answer yes or no."
    for answer in ("Yes.", "Yes, it is.", "The rowing boat of Greta Stolberg is painted black.\n\nThe answer is yes."):
        assert check_answer(answer, [fact], question).contradicted == {"purple": "black"} or "purple" in check_answer(answer, [fact], question).contradicted


def test_picking_an_option_the_fact_contradicts_is_rejected():
    g = check_answer("B) a parrot", ["Oswin keeps a pet tortoise named Biscuit."], "What pet does Oswin keep? (A) a tortoise (B) a parrot (C) a goat (D) an owl.")
    assert not g.supported and g.contradicted.get("parrot") == "tortoise"


def test_one_of_several_alternatives_named_in_the_question_is_checked():
    assert not check_answer("Blue.", ["The flag is green."], "Is the flag blue or green?").supported


def test_word_classes_know_groups_and_leave_ordinary_words_alone():
    assert classes_of("crimson") and classes_of("lanterns") == [] and classes_of("mended") == []
    assert contradiction("red", ["It was crimson."]) is None  # same group
    assert contradiction("red", ["It was green."]) == "green"
    assert contradiction("red", ["It was large."]) is None  # the facts say nothing of its colour


def test_a_recipe_refuses_a_contradicted_answer_and_says_why(engine):
    """Control flow with a scripted engine that always answers "Blue.": the answer is not that value."""
    text = (
        "The Ebbingford rowing club was founded in 1881 by the miller's sons. "
        "The official colour of the Ebbingford rowing club is green. "
        "Its boathouse stands by the river, below the old bridge."
    )
    fake = ScriptedEngine(reply=lambda prompt: "Blue.", context_window=1024)
    fake.count_tokens = engine.count_tokens  # type: ignore[method-assign]
    answer = ContextAgent(engine=fake).ask(Document(id="club", text=text), "What is the official colour of the Ebbingford rowing club?", recipe="retrieve_then_reason")
    assert "blue" not in answer.text.lower()
    assert any("'Blue' (the facts say 'green')" in n for n in answer.notes), answer.notes
