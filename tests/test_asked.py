"""What kind of answer a question asks for (ctxagent.recipes.asked), and the answer steps that
refuse a grounded reply that does not give it: answer_from_facts, direct and the corpus reduce,
with the scripted engine. The cases are Qwen 0.5B's own replies on the bundled SQuAD questions
(benchmarks/squad_passages.py), each passed by grounding since every word is in its fact."""

from __future__ import annotations

import pytest

from ctxagent.recipes import get_recipe
from ctxagent.recipes.asked import asked_for, gives
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.reading import Facts, answer_from_facts, confirmed
from ctxagent.types import Budget, Document
from tests.fakes import ScriptedEngine
from tests.grounded import facts_of

NONG_SHU = "Some Yuan documents such as Wang Zhen's Nong Shu were printed with earthenware movable type, a technology invented in the 12th century."
DOC = Document(id="yuan", text="The Yuan court patronised printing. " + NONG_SHU + " Western musical instruments were introduced.")


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("In what year did Harvard President Joseph Willard die?", "year"),
        ("What was the first year that Yale and Harvard played football?", "year"),
        ("Which century saw the fall of Rome?", "year"),
        ("When were the Crofts to have possession?", "time"),
        ("How many natural reserves are in Warsaw?", "count"),
        ("In total, how many sheep are there?", "count"),
        ("Who wrote the Nong Shu?", "person"),
        ("By whom was it built?", "person"),
        # Not plainly one kind, or answered by an option: not judged.
        ("What happened in the year of the flood?", None),
        ("Whose hat was it?", None),
        ("Was Emma's mother alive?", None),
        ("Who was Margaret's brother? A) Edgar B) David", None),
        ("What did Davies call his system?", None),
    ],
)
def test_the_kind_a_question_asks_for(question, kind):
    assert asked_for(question) == kind


@pytest.mark.parametrize(
    ("question", "answer", "given"),
    [
        ("Who wrote the Nong Shu?", "The Nong Shu was printed with earthenware movable type, a technology invented in the 12th century.", False),
        ("Who wrote the Nong Shu?", "Wang Zhen wrote it.", True),
        ("Who was Margaret's brother?", "Edgar was Margaret's brother.", True),  # a sentence opener may be the name
        ("Who are committees comprised of?", "Committees are established at the beginning of each parliamentary session.", False),
        ("Who is Emma's governess?", "Miss Taylor", True),
        ("In what year did Harvard President Joseph Willard die?", "In the early years the College trained many Puritan ministers.", False),
        ("In what year did Harvard President Joseph Willard die?", "He died in 1804.", True),
        ("In what year did Lady Elliot die?", "Lady Elliot died in 13 years.", False),  # Qwen 0.5B on Persuasion: no year
        ("In what year did Lady Elliot die?", "She died on 4 June 1800.", True),
        ("Which century saw the fall of Rome?", "The 5th century.", True),
        ("What happened in 1781 at the mill?", "The mill burned in 1781.", True),  # not judged: no kind asked
        ("What was the first year that Yale and Harvard played football?", "The first game was in 1875.", True),
        ("When were the Crofts to have possession?", "At Michaelmas.", True),
        ("When did she leave Bath?", "After the ball.", True),
        ("When did she leave Bath?", "She left Bath with her sister.", False),
        ("How many interactions are the forces based on?", "The forces are all of the fundamental forces combined.", False),
        ("How many interactions are the forces based on?", "four", True),
        ("How many ships sailed in 1886?", "Several ships sailed in 1886.", True),
        ("How many ships sailed in 1886?", "Ships sailed in 1886.", False),  # the question's year is no count
    ],
)
def test_whether_an_answer_gives_it(question, answer, given):
    asked = asked_for(question)
    assert asked is None or gives(answer, question, asked) is given
    assert asked is not None or given


def _facts(*quotes: str) -> Facts:
    return facts_of(DOC, *quotes)


def _ctx(reply: str) -> RunContext:
    return RunContext(engine=ScriptedEngine(lambda prompt: reply), budget=Budget(max_new_tokens=48))


NON_ANSWER = "The Nong Shu was printed with earthenware movable type, a technology invented in the 12th century.\nFacts used: 1"


def test_answer_from_facts_refuses_a_grounded_non_answer_for_the_quote():
    answer = answer_from_facts(_ctx(NON_ANSWER), "map_reduce", [DOC], "Who wrote the Nong Shu?", _facts(NONG_SHU))
    assert answer.text == NONG_SHU and answer.basis == "quote" and not confirmed(answer)
    assert any("it gives no one, which the question asks for" in n for n in answer.notes)
    named = answer_from_facts(_ctx("Wang Zhen wrote the Nong Shu.\nFacts used: 1"), "map_reduce", [DOC], "Who wrote the Nong Shu?", _facts(NONG_SHU))
    assert named.text == "Wang Zhen wrote the Nong Shu." and named.basis == "stated"


def test_direct_refuses_a_grounded_non_answer_for_the_sentence_it_points_at():
    answer = run_recipe(get_recipe("direct"), _ctx(NON_ANSWER.splitlines()[0]), [DOC], "Who wrote the Nong Shu?")
    assert answer.text == NONG_SHU and answer.basis == "quote"
    assert any("it gives no one" in n for n in answer.notes)


def test_the_corpus_reduce_keeps_a_combined_reply_only_when_it_gives_the_kind():
    from ctxagent.corpus.ask import _answers_from

    quotes = [NONG_SHU, "Wang Zhen was a Yuan official."]
    assert _answers_from("Wang Zhen wrote it.", quotes, "Who wrote the Nong Shu?")
    assert not _answers_from(NON_ANSWER.splitlines()[0], quotes, "Who wrote the Nong Shu?")
    assert not _answers_from("Li Bai wrote it.", quotes, "Who wrote the Nong Shu?"), "unsupported, as before"
