"""The grounding rule (ctxagent.grounding) branch by branch, and the answer step that applies it
(answer_from_facts, direct) with the scripted engine: accept, refuse to a quote, refuse to NOT
FOUND, facts-used parsing, the evidence trace step. Whether the real model's answers stay
grounded is checked end to end in test_recipes_e2e.py and test_direct_e2e.py."""

from __future__ import annotations

import pytest

from ctxagent.citations import citation_for
from ctxagent.evaluation.scoring import unsupported_specifics
from ctxagent.grounding import check_answer, find_specifics, question_options
from ctxagent.recipes import get_recipe
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.reading import FALLBACK_NOTE, NOT_FOUND, Facts, answer_from_facts, confirmed, parse_reply, quote_answer
from ctxagent.types import Budget, Document
from tests.fakes import ScriptedEngine
from tests.grounded import facts_of

REVENUE = "Third-quarter revenue reached 26.4 million euros, the highest in the company's history, driven by the first deliveries to Osaka."
VOYAGE = ["The ship Aurora left Lisbon in 1886.", "The Aurora reached Macau in 1890 with 12 crew.", "Another 30 sailors joined the crew at Macau."]


def _ok(answer: str, facts: list[str], question: str = "") -> bool:
    return check_answer(answer, facts, question).supported


# -- what counts as a specific --------------------------------------------------------------
def test_specifics_are_numbers_dates_and_names_not_sentence_openers():
    found = [(s.kind, s.text) for s in find_specifics("It was delivered on June 12, 1886, during the 1886 World's Fair.")]
    assert found == [("date", "June 12, 1886"), ("number", "1886"), ("name", "World's Fair")]
    found = [(s.kind, s.text) for s in find_specifics("Yes, twelve ships, about 26% or $1,200 in Q3. The Aurora sailed.")]
    assert found == [("number", "twelve"), ("number", "26%"), ("number", "$1,200"), ("name", "Q3"), ("name", "Aurora")]
    # A capitalised word that only opens a sentence is not a name; "one" alone is a pronoun, not a number.
    assert find_specifics("Revenue rose. However, one of them fell.") == []
    assert [s.text for s in find_specifics("Anne Elliot married Captain Wentworth.")] == ["Anne Elliot", "Captain Wentworth"]
    # But a short answer is a phrase, not a sentence: its capital is the name it gives, and must be found.
    assert [s.text for s in find_specifics("Paris.")] == ["Paris"]
    assert not check_answer("Paris.", ["The Louvre stands in Lyon."], "Where is the Louvre?").supported
    assert check_answer("Lyon.", ["The Louvre stands in Lyon."], "Where is the Louvre?").supported


# -- supported literally, after normalisation -----------------------------------------------
def test_a_stated_specific_is_supported():
    result = check_answer("The revenue was 26.4 million euros, from Osaka.", [REVENUE])
    assert result.supported and result.facts_used == [0]
    assert [s.how for s in result.supports] == ["stated", "stated"]


@pytest.mark.parametrize("answer", ["Revenue was 26,400,000 euros.", "Revenue was €26.4M.", "Revenue was 26.4 million.", "Revenue was 26.4."])
def test_numbers_are_compared_after_normalisation(answer):
    assert _ok(answer, [REVENUE])


def test_number_words_percentages_and_dates_normalise():
    assert _ok("There were twelve crew.", VOYAGE)
    assert _ok("Margins were 12%.", ["Margins were 12 percent in the year."])
    assert _ok("It opened on 12 June 1886.", ["The fair opened on June 12, 1886."])
    assert _ok("It opened in June 1886.", ["The fair opened on June 12, 1886."])


# -- computed from the facts ----------------------------------------------------------------
def test_unshown_sum_difference_and_year_gap_are_supported():
    sum_ = check_answer("The crew numbered 42.", VOYAGE, "How many crew?")
    assert sum_.supported and sum_.supports[0].how == "sum of 12 and 30" and sum_.facts_used == [1, 2]
    gap = check_answer("The voyage took 4 years.", VOYAGE, "How long was the voyage?")
    assert gap.supported and gap.supports[0].how.startswith("difference of 1886 and 1890")
    assert _ok("The difference is 18 sailors.", VOYAGE, "How many more sailors joined than reached Macau?")


def test_shown_arithmetic_is_checked_with_its_operands():
    shown = check_answer("12 + 30 = 42 crew in all.", VOYAGE)
    assert shown.supported and shown.supports[-1].how == "arithmetic shown: 12 + 30 = 42"
    assert _ok("It took four years (1890 - 1886 = 4).", VOYAGE)
    wrong = check_answer("12 + 30 = 43 crew in all.", VOYAGE)
    assert not wrong.supported and wrong.unsupported == ["43"]
    # Correct arithmetic on a number the facts do not state proves nothing.
    invented = check_answer("12 + 31 = 43 crew in all.", VOYAGE)
    assert not invented.supported and invented.unsupported == ["31", "43"]
    # A unit conversion constant may be shown: 26.4 million a quarter is 8.8 million a month.
    assert _ok("26.4 million / 3 = 8.8 million a month.", [REVENUE])


# Real text: the four sentences a SmolLM2 answer cited in the A/B run (SQuAD 2.0, Wikipedia, CC BY-SA 4.0).
EU = [
    "The European Commission is the main executive body of the European Union.",
    'Under article 17(2), "Union legislative acts may only be adopted on the basis of a Commission proposal, except where the Treaties provide otherwise.',
    "The second main legislative body is the Council, which is composed of different ministers of the member states.",
    "TEU article 16(4) and TFEU article 238(3) define this to mean at least 55 per cent of the Council members (not votes) representing "
    "65 per cent of the population of the EU: currently this means around 74 per cent, or 260 of the 352 votes. This is critical during the legislative process.",
]
EU_QUESTION = "What is the main executive body of the EU?"


def test_a_number_the_question_does_not_ask_for_is_not_computed_by_chance():
    # Issue 25: "75" was "supported" as 17 + 3 + 55 (an article, a clause and a percentage).
    result = check_answer("The European Commission is the main executive body of the EU. It has 75 members.", EU, EU_QUESTION)
    assert not result.supported and result.unsupported == ["75"]
    assert check_answer("The European Commission is the main executive body of the EU.", EU, EU_QUESTION).supported
    # Asked for a quantity, two numbers still derive one; three add up only for a total, and a percentage
    # never adds to a count.
    assert _ok("92 votes.", EU, "How many of the 352 votes can the majority fall short by?")
    assert not _ok("75 members.", EU, "How many members does the Council have?")
    assert _ok("75 members.", EU, "How many members do articles 17, 3 and 55 hold in total?")  # all three in the question
    assert not _ok("It needs 72.", EU, "How many are needed?")  # 17 + 55 per cent


def test_a_date_derived_from_another_needs_its_year_computed():
    facts = ["The treaty was signed on June 12, 1886.", "It took effect two years later, on the same day."]
    assert _ok("It took effect on June 12, 1888.", facts, "When did it take effect?")
    assert not _ok("It took effect on June 12, 1889.", facts, "When did it take effect?")


# -- refused --------------------------------------------------------------------------------
def test_unsupported_date_name_and_number_are_refused():
    result = check_answer("It was delivered on June 12, 1886, during the 1886 World's Fair.", [REVENUE], "When was it delivered?")
    assert not result.supported and result.unsupported == ["June 12, 1886", "1886", "World's Fair"]
    assert check_answer("The revenue was 30 million euros.", [REVENUE]).unsupported == ["30 million"]
    assert check_answer("Deliveries went to Kyoto.", [REVENUE]).unsupported == ["Kyoto"]
    # A small integer is not "computed" by a ratio that merely rounds to it (30 / 12 = 2.5); years only add
    # and subtract (1886 / 12 = 157.2); only a number marked as a percentage is one (30 / 12 = 250%).
    assert not _ok("The Aurora was rated 3.", VOYAGE, "What was the Aurora's rating?")
    assert not _ok("The Aurora was rated 157.", VOYAGE)
    grew = "By what percentage did the crew grow?"
    assert _ok("The crew grew by 250%.", VOYAGE, grew) and not _ok("The Aurora carried 250 tons.", VOYAGE, "How much did the Aurora carry?")


# The A/B task squad-6144-spread-0-3 (issue 25): SmolLM2 answered "the European Council" while its citations name
# the European Commission, and "Council" only elsewhere. Sentences as the task's document has them.
EU_FACTS = [
    "The European Commission is the main executive body of the European Union.",
    "The second main legislative body is the Council, which is composed of different ministers of the member states.",
]
EU_QUESTION = "What is the main executive body of the EU?"


def test_a_name_is_stated_only_as_that_name_never_gathered_from_several_facts():
    result = check_answer("The main executive body of the EU is the European Council.", EU_FACTS, EU_QUESTION)
    assert not result.supported and result.unsupported == ["European Council"]
    # Both words in one fact, apart, do not name it either; nor do they in the wrong order.
    assert not _ok("It is the European Council.", [" ".join(EU_FACTS)], EU_QUESTION)
    assert not _ok("Anne Elliot married.", ["Elliot, the daughter of Anne, married."])
    # The name the facts do give is stated, and the eval's own check agrees on both.
    assert check_answer("The European Commission is the main executive body.", EU_FACTS, EU_QUESTION).supported
    assert unsupported_specifics("The main executive body of the EU is the European Council.", EU_FACTS, EU_QUESTION) == ["European Council"]
    assert unsupported_specifics("The European Commission is the main executive body.", EU_FACTS, EU_QUESTION) == []


@pytest.mark.parametrize(
    ("answer", "fact"),
    [
        ("The European Commission leads.", "The European\nCommission is the main executive body."),  # a line break inside the name
        ("The Commission's President sets the agenda.", "The Commission's President (currently Jean-Claude Juncker) sets it."),
        ("Jean Claude Juncker presides.", "The Commission's President (currently Jean-Claude Juncker) sets it."),  # hyphen
        ("The Normans Conquest began.", "The Norman's conquest began in 1066."),  # plural, possessive, case
        ("Walter Elliot of Kellynch Hall was vain.", "Sir Walter Elliot, of Kellynch-Hall, was vain."),  # honorific, joiner, hyphen
        ("John Kennedy was president.", "John F. Kennedy was president."),  # an initial left out
        ("The Bank England raised rates.", "The Bank of England raised rates."),  # a joiner left out
    ],
)
def test_a_name_stands_in_one_fact_with_the_usual_tolerance(answer, fact):
    assert _ok(answer, ["An unrelated first fact.", fact]), check_answer(answer, [fact]).unsupported
    assert unsupported_specifics(answer, ["An unrelated first fact.", fact]) == []


def test_a_name_the_question_gives_is_a_bridge_not_an_assertion():
    question = "Who appoints the board of the European Central Bank?"
    assert _ok("The European Council appoints the European Central Bank's board.", ["It has a six-person board appointed by the European Council."], question)
    # The question's name, once echoed, still does not lend its words to a different name.
    assert not _ok("The Central Council appoints it.", EU_FACTS, question)
    # One-word names still need only to be among one fact's words, and a two-hop answer's names each stand in their fact.
    hops = ["The stolen emerald was hidden in the cottage of Captain Thornbury.", "Captain Thornbury lives in the village of Wrexley."]
    assert _ok("Captain Thornbury, who lives in Wrexley.", hops, "In which village is the stolen emerald?")


# -- question echo --------------------------------------------------------------------------
def test_specifics_repeated_from_the_question_are_echoes_not_assertions():
    question = "What was the revenue in the third quarter of 2023 for Nordwind?"
    result = check_answer("In 2023, Nordwind's third-quarter revenue was 26.4 million euros.", [REVENUE], question)
    assert result.supported and [s.how for s in result.supports] == ["question", "question", "stated"]
    # An echo never vouches for a new specific.
    assert not _ok("In 2023, Nordwind's revenue was 27 million euros.", [REVENUE], question)


# -- derived answers ------------------------------------------------------------------------
def test_yes_no_answers_carry_the_question_when_they_affirm():
    question = "Was the third-quarter revenue 30 million euros?"
    assert _ok("No — the report gives 26.4 million, not 30 million.", [REVENUE], question)
    assert _ok("No.", [REVENUE], question)
    affirmed = check_answer("Yes.", [REVENUE], question)
    assert affirmed.derived == "yes" and affirmed.unsupported == ["30 million"]
    assert not _ok("Yes, it was 30 million euros.", [REVENUE], question)
    assert _ok("Yes.", [REVENUE], "Was the third-quarter revenue 26.4 million euros?")
    assert _ok("True, deliveries went to Osaka.", [REVENUE], "True or false: the first deliveries went to Osaka.")


def test_an_option_letter_carries_its_option():
    question = "In which year did the Aurora leave Lisbon?\nA) 1880\nB) 1886\nC) 1890"
    assert question_options(question) == {"A": "1880", "B": "1886", "C": "1890"}
    for answer in ["B", "(B)", "B) 1886", "The answer is B.", "Option B"]:
        result = check_answer(answer, VOYAGE, question)
        assert result.supported and result.derived == "choice B", answer
    wrong = check_answer("A", VOYAGE, question)
    assert wrong.derived == "choice A" and wrong.unsupported == ["1880"]
    inline = "Where did the Aurora arrive? A) Macau B) Kyoto"
    assert _ok("A", VOYAGE, inline) and not _ok("B", VOYAGE, inline)


def test_a_count_may_count_the_facts():
    result = check_answer("3", VOYAGE, "How many facts mention the Aurora's crew or route?")
    assert result.supported and result.supports[0].how == "count of the facts" and result.facts_used == [0, 1, 2]
    assert not _ok("3", VOYAGE, "What is the ship's number?")



EMMA = [
    "Sixteen years had Miss Taylor been in Mr. Woodhouse's family, less as a governess than a friend, very fond of both daughters.",
    '"Only one more, papa; only for Mr. Elton. Poor Mr. Elton!"',
]


def test_a_pronoun_one_states_no_count():
    """Found on Emma with the embedded model: "How many daughters did Mr. Woodhouse have?" was
    answered "The answer is 1." and passed as stated, the 1 read from "Only one more, papa", and
    "3" as the sum of that 1 and the count of the facts. A fact's "one" that counts nothing
    supports no number, and the count of the facts is an answer, not an operand."""
    question = "How many daughters did Mr. Woodhouse have?"
    assert not _ok("The answer is 1.", EMMA, question)
    assert not _ok("Mr. Woodhouse had 3 daughters.", EMMA, question)
    assert _ok("16 years", EMMA, "How many years had Miss Taylor been in the family?")
    for fact in ["He had one daughter.", "One day she left for Bath.", "It ended one year later."]:
        assert _ok("1", [fact], "What is it?"), fact
    for fact in ["No one came.", "She was one of them.", "He was the one who spoke.", "Only one more, papa."]:
        assert not _ok("1", [fact], "What is it?"), fact


def test_an_age_rests_only_on_an_age():
    """Also on Emma: "How many years had Miss Taylor been in Mr. Woodhouse's family?" was answered
    "Miss Taylor was sixteen years old when she was sent to Mr. Woodhouse's family" from "Sixteen
    years had Miss Taylor been in Mr. Woodhouse's family", and passed as stated. A number given as
    an age needs a fact that gives it as an age, or a gap between years."""
    question = "How many years had Miss Taylor been in Mr. Woodhouse's family?"
    assert not _ok("Miss Taylor was sixteen years old when she was sent to the family.", EMMA, question)
    assert _ok("Sixteen years.", EMMA, question) and _ok("She had been there 16 years.", EMMA, question)
    lives = ["He died at the age of 72 in 1901.", "Born in 1880, he left home in 1896.", "She was a 16-year-old clerk."]
    assert _ok("He was 72 years old.", lives, "How old was he when he died?")
    assert _ok("He was 16 years old.", lives, "How old was he when he left home?")  # 1896 - 1880
    assert _ok("She was aged sixteen.", lives[2:], "How old was the clerk?")
    assert not _ok("He was 1901 years old.", lives[:1], "How old was he?")


def test_a_number_from_a_fact_about_something_else_is_unsupported():
    """Qwen 0.5B on SQuAD took a year from the wrong sentence and passed as stated. A number or
    date must be stated by a fact that shares a word with the question (an inflection aside);
    shown arithmetic may still rest on a fact in other words."""
    plants = [
        "A decade after the 1973 oil crisis, Honda, Toyota and Nissan, affected by the 1981 voluntary export restraints, opened US assembly plants.",
        "By 1985, the average American vehicle moved 17.4 miles per gallon, compared to 13.5 in 1970.",
    ]
    question = "When did Honda, Toyota and Nissan open US assembly plants?"
    assert not _ok("Honda, Toyota and Nissan opened US assembly plants in 1985.", plants, question)
    assert _ok("They opened them after the 1981 export restraints.", plants, question)
    assert _ok("17.4 miles per gallon.", plants, "How far did the average American vehicle move per gallon in 1985?")

def test_a_dates_day_supports_a_bare_number_only_where_a_day_is_asked_for():
    # SmolLM2 on Persuasion: "How old was Elizabeth Elliot?" answered "1", from "born March 1, 1760"
    fact = ['"Walter Elliot, born March 1, 1760, married, July 15, 1784, Elizabeth, daughter of James Stevenson, Esq.']
    assert not _ok("1", fact, "How old was Elizabeth Elliot?")
    assert _ok("The 15th.", fact, "On what day of July did Walter Elliot marry?")
    assert _ok("He was born in 1760.", fact, "When was Walter Elliot born?")


# -- the answer step ------------------------------------------------------------------------
DOC = Document(id="report", text="The office was repainted in spring. " + REVENUE + " Staff numbers rose to 212 by the end of the year. " + VOYAGE[0])
QUESTION = "What was the third-quarter revenue?"


def _facts(*quotes: str) -> Facts:
    return facts_of(DOC, *quotes)


def _answer(reply: str, facts: Facts, question: str = QUESTION):
    engine = ScriptedEngine(lambda prompt: reply)
    ctx = RunContext(engine=engine, budget=Budget(max_new_tokens=32))
    return answer_from_facts(ctx, "map_reduce", [DOC], question, facts), engine


def _evidence(answer) -> list[list]:
    return [s.detail["spans"] for s in answer.trace.steps if s.name == "evidence"]


def test_a_grounded_answer_cites_the_facts_it_used_and_records_its_evidence():
    staff = "Staff numbers rose to 212 by the end of the year."
    answer, engine = _answer("The revenue was 26.4 million euros.\nFacts used: 2", _facts(staff, REVENUE))
    assert answer.text == "The revenue was 26.4 million euros." and confirmed(answer) and answer.basis == "stated"
    assert [c.quote for c in answer.citations] == [REVENUE]
    assert "[1] " + staff in engine.calls[0][0] and "Facts used:" in engine.calls[0][0]
    start = DOC.text.index(staff)
    assert _evidence(answer) == [[["report", start, start + len(staff)], ["report", DOC.text.index(REVENUE), DOC.text.index(REVENUE) + len(REVENUE)]]]


def test_without_a_facts_used_line_the_supporting_facts_are_cited():
    staff = "Staff numbers rose to 212 by the end of the year."
    answer, _ = _answer("It was 26.4 million euros.", _facts(staff, REVENUE))
    assert [c.quote for c in answer.citations] == [REVENUE]


def test_a_derived_answer_is_accepted_and_cites_both_operands():
    staff = "Staff numbers rose to 212 by the end of the year."
    question = "What was the revenue per employee?"
    rounded, _ = _answer("About 125,000 euros per employee.", _facts(REVENUE, staff), question)
    assert confirmed(rounded) and [c.quote for c in rounded.citations] == [REVENUE, staff]
    wrong, _ = _answer("26.4 million / 212 = about 130,000 euros per employee.", _facts(REVENUE, staff), question)
    # Refused; the revenue sentence does not hold most of this question's words, so it is no answer either.
    assert not confirmed(wrong) and wrong.text == NOT_FOUND and any("'130,000'" in n for n in wrong.notes)
    answer, _ = _answer("26,400,000 / 212 = 124,528.3 euros per employee. Facts used: 1, 2", _facts(REVENUE, staff), "What was the revenue per employee?")
    assert confirmed(answer) and [c.quote for c in answer.citations] == [REVENUE, staff]


def test_an_unsupported_answer_is_refused_for_the_best_quote_naming_why():
    answer, _ = _answer("The revenue was 30 million euros, at the 1886 World's Fair.\nFacts used: 1", _facts(REVENUE))
    assert answer.text == REVENUE and [c.quote for c in answer.citations] == [REVENUE]
    assert answer.basis == "quote", "the quote is the answer: nothing the model wrote is asserted"
    note = next(n for n in answer.notes if n.startswith(FALLBACK_NOTE))
    assert "'30 million'" in note and "'World's Fair'" in note
    assert not confirmed(answer)
    refused = [s for s in answer.trace.steps if s.name == "answer:refused"]
    assert refused and refused[0].detail["unsupported"] == ["30 million", "1886", "World's Fair"]
    assert len(_evidence(answer)) == 1, "the quote was one of the facts shown; evidence is recorded once"


def test_an_unsupported_answer_over_off_topic_facts_is_not_found():
    answer, _ = _answer("The revenue was 30 million euros.", _facts("The office was repainted in spring."))
    assert answer.text == NOT_FOUND and not answer.citations and answer.basis == "none"
    assert any("none about the question" in n and "'30 million'" in n for n in answer.notes)


def test_a_reply_saying_the_facts_do_not_answer_falls_back_to_the_quote():
    answer, _ = _answer("NONE", _facts(REVENUE))
    assert answer.text == REVENUE and any("do not answer" in n for n in answer.notes)
    # Repeating the question (its specifics included) answers nothing either.
    echo, _ = _answer("The third-quarter revenue in 2023.", _facts(REVENUE), "What was the third-quarter revenue in 2023?")
    assert echo.text == REVENUE and any("says nothing the facts say" in n for n in echo.notes)
    # So does one whose names are the question's, though a fact states them too, and whose
    # other words are the question's give or take an inflection (Qwen 0.5B on Emma: "Miss
    # Taylor married." to "Who did Miss Taylor marry?", passed as stated).
    asked = "Who sailed the ship Aurora from Lisbon?"
    names, _ = _answer("The ship Aurora sailed from Lisbon.", _facts(VOYAGE[0]), asked)
    assert names.text == VOYAGE[0] and names.basis == "quote" and any("says nothing the facts say" in n for n in names.notes)
    told, _ = _answer("The Aurora left Lisbon in 1886.", _facts(VOYAGE[0]), "When did the Aurora leave Lisbon?")
    assert told.basis == "stated" and told.text.startswith("The Aurora left")


def test_facts_used_are_parsed_leniently():
    assert parse_reply("It was 26.4 million.\nFacts used: 1, 3", 3).claimed == [0, 2]
    assert parse_reply("It was 26.4 million [2].", 3).text == "It was 26.4 million."
    assert parse_reply("It was 26.4 million (facts 1 and 2).", 3).claimed == [0, 1]
    assert parse_reply("It was 26.4 million. Facts used: [1] [3]", 3).claimed == [0, 2]
    said = parse_reply("Fact 2 says it was 26.4 million.", 3)
    assert said.claimed == [1] and said.text.startswith("Fact 2") and [s.text for s in find_specifics(said.checked)] == ["26.4 million"]
    # A bracketed number that is no fact's is part of the answer; no list at all means "not said".
    kept = parse_reply("He was born in Lisbon (1886).", 3)
    assert kept.text == "He was born in Lisbon (1886)." and kept.claimed is None
    assert parse_reply("Facts used: 7", 3).claimed is None


def _no_call_left() -> RunContext:
    """A run whose one engine call is spent."""
    ctx = RunContext(engine=ScriptedEngine(lambda prompt: "unused"), budget=Budget(max_calls=1, max_new_tokens=32))
    ctx.generate(["spend the one call"], step="extract")
    return ctx


@pytest.mark.parametrize("question,text,basis", [("Did revenue reach 26.4 million euros?", "Yes", "stated"), ("Was the office repainted in autumn?", None, "option")])
def test_a_budget_spent_before_the_answer_step_still_gives_a_yes_no_question_its_option(question, text, basis):
    """No engine call left for the answer step: a yes/no question gets an option, chosen without
    the engine (a passage stating the claim, else the evidence's words), flagged partial; the
    facts shown are the evidence. Any other question gets the best verified quote."""
    answer = answer_from_facts(_no_call_left(), "map_reduce", [DOC], question, _facts(REVENUE, "The office was repainted in spring."))
    assert answer.partial and answer.basis == basis and answer.text in (("Yes", "No") if text is None else (text,)), answer.notes
    assert any("before the answer step" in n for n in answer.notes) and answer.citations
    assert len(_evidence(answer)[-1]) == 2
    quoted = answer_from_facts(_no_call_left(), "map_reduce", [DOC], QUESTION, _facts(REVENUE))
    assert quoted.partial and quoted.text == REVENUE and quoted.basis == "quote"


def test_a_quote_answer_records_the_quote_as_evidence():
    ctx = RunContext(engine=ScriptedEngine())
    answer = quote_answer(ctx, "recurrent", _facts(REVENUE), ["stopped"], partial=True)
    start = DOC.text.index(REVENUE)
    assert answer.text == REVENUE and _evidence(answer) == [[["report", start, start + len(REVENUE)]]]
    assert answer.basis == "quote"


# -- direct ---------------------------------------------------------------------------------
def _direct(reply: str, question: str = QUESTION):
    ctx = RunContext(engine=ScriptedEngine(lambda prompt: reply), budget=Budget(max_new_tokens=32))
    return run_recipe(get_recipe("direct"), ctx, [DOC], question)


def test_direct_cites_the_sentence_that_supports_its_answer_and_records_the_prompt_span():
    answer = _direct("Revenue was 26.4 million euros.")
    assert answer.text == "Revenue was 26.4 million euros." and [c.quote for c in answer.citations] == [REVENUE]
    assert answer.basis == "stated"
    assert _evidence(answer) == [[["report", 0, len(DOC.text)]]]


def test_direct_refuses_an_unsupported_answer():
    quoted = _direct("Revenue was 31.2 million euros.")
    assert quoted.text == REVENUE and any("'31.2 million'" in n for n in quoted.notes) and quoted.basis == "quote"
    lost = _direct("The CEO is Maria Lopez.", "Who is the chief executive?")
    assert lost.text == NOT_FOUND and not lost.citations and any("'Maria Lopez'" in n for n in lost.notes)
    assert lost.basis == "none"


def test_direct_accepts_a_derived_answer():
    answer = _direct("No — it was 26.4 million euros, not 30 million.", "Was the third-quarter revenue 30 million euros?")
    assert answer.text.startswith("No") and [c.quote for c in answer.citations] == [REVENUE]


# -- end to end with the embedded model -----------------------------------------------------
LIGHTHOUSE = "The old lighthouse on the Cobb at Lyme stands 412 feet above the sea."


@pytest.mark.slow
def test_a_number_stated_in_the_text_is_answered_grounded_with_the_real_model(engine_2k):
    """Real text (Persuasion) about 1.5x the capped window, one sentence with the number: map_reduce
    reads it, the answer step (numbered facts, facts-used line) answers, and the answer's number is in
    its citation."""
    from ctxagent.evaluation.haystack import haystack_text
    from tests.grounded import assert_grounded

    paragraphs, tokens = [], 0
    for paragraph in haystack_text("persuasion").split("\n\n"):
        paragraphs.append(paragraph)
        tokens += engine_2k.count_tokens(paragraph) + 1
        if tokens > 3000:
            break
    paragraphs.insert(len(paragraphs) // 2, LIGHTHOUSE)
    doc = Document(id="persuasion", text="\n\n".join(paragraphs))
    question = "How tall is the old lighthouse on the Cobb at Lyme?"
    ctx = RunContext(engine=engine_2k, budget=Budget(max_new_tokens=48))
    answer = run_recipe(get_recipe("map_reduce"), ctx, [doc], question)
    assert "412" in answer.text and any("412" in c.quote for c in answer.citations), (answer.text, answer.notes)
    assert_grounded(answer, question)
    evidence = [s.detail["spans"] for s in answer.trace.steps if s.name == "evidence"]
    assert evidence and any(start <= doc.text.index(LIGHTHOUSE) < end for _, start, end in evidence[-1])


def test_the_corpus_reduce_keeps_a_grounded_combined_answer_without_its_facts_used_line():
    from ctxagent.corpus.ask import _reduce
    from ctxagent.types import Answer

    a = Document(id="a", text="The Aurora carried 12 crew on her first voyage.")
    b = Document(id="b", text="The Bell carried 30 crew on her first voyage.")
    answers = [(d.id, Answer(text=d.text, citations=[citation_for(d, 0, len(d.text))])) for d in (a, b)]
    question = "How many crew did the Aurora and the Bell carry in total?"
    for reply, expected in [("They carried 42 crew in total.\nFacts used: 1, 2", "They carried 42 crew in total."), ("They carried 50 crew.", f"{a.text} {b.text}")]:
        ctx = RunContext(engine=ScriptedEngine(lambda prompt: reply))
        assert _reduce(ctx, "corpus", question, answers, [], {"a": a, "b": b}).text == expected
