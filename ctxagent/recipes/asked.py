"""What kind of answer a question asks for, and whether an answer gives it.

A grounded answer may still not answer: asked "Who wrote the Nong Shu?", Qwen 0.5B wrote
"The Nong Shu was printed with earthenware movable type, a technology invented in the
12th century." Every word of it is in its fact, so grounding passes it, yet it names no
one. Asked "In what year did Harvard President Joseph Willard die?", it wrote "In the
early years the College trained many Puritan ministers." Such an answer recites a
sentence instead of answering; marked `stated`, it would assert that the sentence is
the answer. Three kinds of question say plainly what their answer must hold, and only
those are judged, loosely (the rule catches non-answers, not wrong answers):

- a year ("what year", "in which year"): a year, alone or in a date ("Lady Elliot died in 13
  years" is no answer); a century or decade ("in which century"): a number or a date;
- "when": a date or number, a name (Michaelmas, the Reformation) or a word of time
  ("after the war", "in the spring", "while she was away");
- "how many": a number or a word of quantity ("several", "none");
- "who"/"whom": a capitalised word that is not the question's ("Edgar", "the Catholics").

Only what the question does not already say counts: the year in "What happened in 1781?"
is not an answer to it. A right answer the rule refuses ("members of parliament" to
"Who sits on the committees?") loses only its brevity: the verified quote about the
question stands in its place.
"""

from __future__ import annotations

import re
from typing import Literal

from ctxagent.grounding import find_specifics, loose_names, name_sequence
from ctxagent.recipes.options import choices_of

Asked = Literal["year", "time", "count", "person"]

_YEAR = re.compile(r"\b(?:what|which)\s+(?:(?:was|is|were|are)\s+)?(?:the\s+)?(?:\w+\s+)?(?:year|century|decade)\b", re.IGNORECASE)
_YEAR_ITSELF = re.compile(r"\byear\b", re.IGNORECASE)  # "what year", not "what century": the answer holds a year
_WHEN = re.compile(r"^\W*when\b", re.IGNORECASE)
_HOW_MANY = re.compile(r"\bhow many\b", re.IGNORECASE)
_WHO = re.compile(r"^\W*(?:(?:by|to|with|for|from)\s+)?(?:who|whom)\b", re.IGNORECASE)
_TIME_WORDS = re.compile(
    r"\b(?:spring|summer|autumn|fall|winter|morning|afternoon|evening|night|midnight|noon|dawn|dusk|today|tomorrow|yesterday"
    r"|week|weeks|month|months|year|years|decade|decades|century|centuries|day|days|hour|hours|minute|minutes|moment|ago"
    r"|after|before|during|until|till|since|later|earlier|soon|once|then|while|when|as soon as|era|period|age|war|reign"
    r"|childhood|youth|time|times|now|never|always|season|holiday|birthday|wedding|death|birth)\b",
    re.IGNORECASE,
)
_QUANTITY_WORDS = re.compile(r"\b(?:several|few|many|dozens?|scores|hundreds|thousands|millions|billions|none|no|both|couple|numerous|multiple|countless|single)\b", re.IGNORECASE)


def asked_for(question: str) -> Asked | None:
    """The kind of answer the question asks for, when it says so plainly; None for any other
    question, and for one with options or a yes/no one (its option is its answer)."""
    if choices_of(question):
        return None
    if _YEAR.search(question):
        return "year"
    if _WHEN.search(question):
        return "time"
    if _HOW_MANY.search(question):
        return "count"
    if _WHO.search(question):
        return "person"
    return None


def gives(answer: str, question: str, asked: Asked) -> bool:
    """Does the answer hold what the question asks for, beyond what the question says itself?"""
    echoed = {s.text.lower() for s in find_specifics(question)}
    new = [s for s in find_specifics(answer) if s.text.lower() not in echoed]
    quantities = any(s.kind in ("number", "date") for s in new)
    if asked == "year":
        return any(s.year or (s.date and s.date[0]) for s in new) if _YEAR_ITSELF.search(question) else quantities
    if asked == "count":
        return any(s.kind == "number" for s in new) or bool(_QUANTITY_WORDS.search(answer))
    named = bool(loose_names(answer) - set(name_sequence(question)))
    if asked == "time":
        return quantities or named or bool(_TIME_WORDS.search(answer))
    return named


def not_given(answer: str, question: str, derived: str = "") -> str:
    """Why the answer is refused for not giving what the question asks for; "" when it gives it,
    or the question asks for no plain kind, or the answer is a derived verdict or choice
    (`Grounding.derived`). The one check every answer step makes."""
    asked = None if derived else asked_for(question)
    if asked is None or gives(answer, question, asked):
        return ""
    what = {"year": "no year", "time": "no time", "count": "no number", "person": "no one"}[asked]
    return f"it gives {what}, which the question asks for"
