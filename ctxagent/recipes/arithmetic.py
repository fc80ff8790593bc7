"""Arithmetic over cited facts: a sum or difference the question asks for, computed and shown.

"How many sheep do Theda and Ivo have together?" is answered by no sentence: one fact
gives Theda's 38, another Ivo's 31. Small models quote both numbers and stop (issue 25:
0/2 with either model). When the question asks for a total or a difference and the
model's answer holds no number computed from its facts, this step finds one number per
thing the question names (the facts naming it, each stating a single quantity) and
writes the computation: "69 (38 + 31 = 69)". The answer check (ctxagent.grounding)
verifies the arithmetic shown and that each operand is stated by a cited fact, as for
any answer, so nothing here is taken on trust. A model that computes correctly keeps
its own answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ctxagent.citations import content_words
from ctxagent.grounding import TOTAL, Grounding, find_specifics

_DIFFERENCE = re.compile(r"\b(?:more|fewer|less)\b[^?]*\bthan\b|\bdifference between\b|\bhow much (?:longer|older|younger|taller|higher|bigger)\b", re.IGNORECASE)
_HOW_MANY = re.compile(r"\bhow (?:many|much)\b|\bwhat is the (?:total|sum|difference)\b", re.IGNORECASE)
# How a computed support is described by grounding (`Support.how`).
_COMPUTED = ("sum", "difference", "product", "ratio", "percentage", "arithmetic shown")


@dataclass
class Computation:
    """The answer text, the expression shown, and the facts (indexes) holding its operands."""

    text: str
    expression: str
    facts: list[int]


def operation(question: str) -> str | None:
    """"sum" or "difference" when the question asks to combine quantities, else None."""
    if not _HOW_MANY.search(question):
        return None
    if _DIFFERENCE.search(question):
        return "difference"
    if TOTAL.search(question):
        return "sum"
    return None


def computed(grounding: Grounding) -> bool:
    """Does the answer state a number computed from its facts (or arithmetic it shows)?"""
    return any(s.ok and s.specific.kind == "number" and s.how.startswith(_COMPUTED) for s in grounding.supports)


def _quantity(fact: str) -> float | None:
    """The one quantity a fact states (years and dates aside), or None if it states none or several."""
    numbers = [s for s in find_specifics(fact) if s.kind == "number" and not s.year]
    values = {s.value for s in numbers}
    return numbers[0].value if len(values) == 1 else None


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def compute(question: str, facts: Sequence[str]) -> Computation | None:
    """The sum or difference the question asks for, over one stated quantity per thing it names.

    The things are the names in the question ("Theda Marchbanks", "Ivo Marchetti"), each
    matched to the one fact that names it and states a single quantity; with no names, the
    two facts that state a single quantity and share most words with the question.
    """
    op = operation(question)
    if op is None:
        return None
    quantities = [(i, _quantity(f)) for i, f in enumerate(facts)]
    usable = [(i, q) for i, q in quantities if q is not None]
    names = [s for s in find_specifics(question) if s.kind == "name"]
    chosen: list[tuple[int, float]] = []
    if len(names) >= 2:
        for name in names:
            words = set(name.words)
            hits = [(i, q) for i, q in usable if words & set(content_words(facts[i]))]
            if len(hits) != 1 or hits[0] in chosen:
                return None
            chosen.append(hits[0])
    else:
        asked = set(content_words(question))
        ranked = sorted(usable, key=lambda iq: -len(asked & set(content_words(facts[iq[0]]))))
        if len(ranked) < 2:
            return None
        chosen = ranked[:2]
    if len(chosen) != 2:
        return None
    (i, a), (j, b) = chosen
    if op == "sum":
        value, expression = a + b, f"{_fmt(a)} + {_fmt(b)} = {_fmt(a + b)}"
    else:  # in the order the question names them ("more X than Y": X - Y), else larger first
        if len(names) < 2:
            (i, a), (j, b) = sorted(chosen, key=lambda iq: -iq[1])
        value, expression = a - b, f"{_fmt(a)} - {_fmt(b)} = {_fmt(a - b)}"
    return Computation(text=f"{_fmt(value)} ({expression})", expression=expression, facts=sorted({i, j}))
