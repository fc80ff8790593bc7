"""Scores for a prediction against reference answers: exact match, contains match, token F1.

Normalisation follows SQuAD's habit (lower case, no punctuation, no articles,
single spaces), so "The answer is Longbourn." contains "longbourn". A task's
headline `score` follows RULER: for `metric="all"` tasks (several needles) it is
the share of reference answers found in the prediction; for `metric="any"`
tasks (question answering) it is 1 when any reference is found.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}‘’“”—–]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    text = _PUNCT.sub(" ", text.lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answer: str) -> float:
    return float(normalize(prediction) == normalize(answer))


def contains_match(prediction: str, answer: str) -> float:
    """1 when the normalised answer occurs in the normalised prediction as whole words."""
    target = normalize(answer)
    if not target:
        return 0.0
    return float(f" {target} " in f" {normalize(prediction)} ")


def token_f1(prediction: str, answer: str) -> float:
    pred, gold = normalize(prediction).split(), normalize(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


@dataclass
class Scores:
    score: float  # the headline number, see the module docstring
    exact: float
    contains: float
    f1: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def score_prediction(prediction: str, answers: Sequence[str], metric: str = "all") -> Scores:
    """Score one prediction against its references.

    exact and f1 take the best reference (or, for metric "all", compare with all
    references joined, since the prediction should list them all); contains is
    the share found ("all") or the best ("any").
    """
    if not answers:
        raise ValueError("no reference answers to score against")
    found = [contains_match(prediction, a) for a in answers]
    if metric == "all":
        joined = " ".join(answers)
        contains = sum(found) / len(found)
        exact = max(exact_match(prediction, joined), exact_match(prediction, answers[0]) if len(answers) == 1 else 0.0)
        f1 = token_f1(prediction, joined)
    elif metric == "any":
        contains = max(found)
        exact = max(exact_match(prediction, a) for a in answers)
        f1 = max(token_f1(prediction, a) for a in answers)
    else:
        raise ValueError(f"unknown metric {metric!r}: use 'all' or 'any'")
    return Scores(score=contains, exact=exact, f1=f1, contains=contains)


# -- judged answers: a number by value, a yes/no, an option letter ---------------------------------

_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\w)|(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(list(_TENS) + _UNITS) + r")(?:[- ](" + "|".join(_UNITS[1:10]) + r"))?\b", re.IGNORECASE)


def numbers_in(text: str) -> list[float]:
    """Every number in the text, written in digits ("1,204", "3.5") or in words up to ninety-nine."""
    values = [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(text)]
    for m in _NUMBER_WORD.finditer(text):
        head, tail = m.group(1).lower(), (m.group(2) or "").lower()
        if head in _TENS:
            values.append(float(_TENS[head] + (_UNITS.index(tail) if tail else 0)))
        elif not tail:
            values.append(float(_UNITS.index(head)))
    return values


def number_match(prediction: str, answer: str) -> float:
    """1 when the answer's value is among the numbers the prediction states (so "23 + 41 = 64" counts for 64)."""
    gold = numbers_in(answer)
    if not gold:
        raise ValueError(f"reference answer {answer!r} holds no number to judge by value")
    return float(any(abs(v - gold[0]) < 1e-9 for v in numbers_in(prediction)))


_YES = {"yes", "true", "correct", "yeah", "indeed"}
_NO = {"no", "false", "incorrect"}  # not "not": "NOT FOUND" is no verdict


def yes_no_of(text: str) -> str | None:
    """The reply's verdict: its first yes-like or no-like word ("Yes, it is green" -> yes), or None."""
    for word in normalize(text).split():
        if word in _YES:
            return "yes"
        if word in _NO:
            return "no"
    return None


# A letter counts when it cannot be the article "A": in brackets, after "answer is", or alone / with "." ")" ":".
_LETTERS = (
    re.compile(r"\(([A-D])\)"),
    re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-D])\b(?!\s+[a-z])"),
    re.compile(r"^\s*([A-D])(?:[.):]|\s*$)"),
)


def choice_of(text: str, options: Sequence[str]) -> int | None:
    """The option a reply picks: a stated letter ("(B)", "B.", "answer is B"), else the one option whose text it contains."""
    for pattern in _LETTERS:
        stated = pattern.search(text)
        if stated:
            return "ABCD".index(stated.group(1))
    named = [i for i, option in enumerate(options) if contains_match(text, option)]
    return named[0] if len(named) == 1 else None


def judge(prediction: str, answers: Sequence[str], scoring: str, options: Sequence[str] = ()) -> float | None:
    """1 or 0 for a judged task (number, yes_no, choice); None for text tasks (scored by match)."""
    if scoring == "number":
        return number_match(prediction, answers[0])
    if scoring == "yes_no":
        return float(yes_no_of(prediction) == normalize(answers[0]))
    if scoring == "choice":
        gold = "ABCD".index(answers[0].strip().upper())
        return float(choice_of(prediction, options) == gold)
    if scoring == "text":
        return None
    raise ValueError(f"unknown scoring {scoring!r}: use text, number, yes_no or choice")


def score_task(prediction: str, answers: Sequence[str], metric: str = "all", scoring: str = "text", options: Sequence[str] = ()) -> Scores:
    """Score a prediction the way its task asks: judged kinds take the verdict as score and exact match."""
    scores = score_prediction(prediction, answers, metric)
    verdict = judge(prediction, answers, scoring, options)
    if verdict is not None:
        scores.score = scores.exact = verdict
    return scores
