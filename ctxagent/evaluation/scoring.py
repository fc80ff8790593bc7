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


# -- evidence recall -------------------------------------------------------------------------------

COVERED = 0.9  # a gold span counts as read when this share of its characters lies inside the evidence


def evidence_recall(gold: Sequence[tuple[int, int]], evidence: Sequence[tuple[int, int]]) -> float | None:
    """Share of gold spans covered (>= 90% of their characters) by the union of the evidence spans.

    This does not depend on the model's skill: it asks whether the text put in front of the
    model for the answer held the facts the answer needs. None when the task has no gold span.
    """
    if not gold:
        return None
    merged: list[list[int]] = []
    for start, end in sorted(evidence):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    covered = 0
    for start, end in gold:
        inside = sum(max(0, min(end, b) - max(start, a)) for a, b in merged)
        covered += inside >= COVERED * max(1, end - start)
    return covered / len(gold)


# -- unsupported specifics ----------------------------------------------------------------------------
# Independent of the recipes' own grounding rule on purpose: a second, simpler reading of the
# same promise ("no name, number or date the cited evidence does not hold").



def _derivable(value: float, numbers: Sequence[float], n_quotes: int) -> bool:
    """A number the quotes state, or one step of arithmetic on two of them, or the count of quotes."""
    if any(abs(value - x) < 1e-9 for x in numbers) or value == n_quotes:
        return True
    pairs = [(x, y) for i, x in enumerate(numbers) for y in numbers[i + 1 :]]
    return any(abs(value - r) < 1e-9 for x, y in pairs for r in (x + y, abs(x - y), x * y))


def unsupported_specifics(answer: str, quotes: Sequence[str], question: str = "") -> list[str]:
    """Numbers, dates and names in `answer` that appear in none of `quotes` nor in `question`.

    What counts as a name or a number is the library's own reading (`grounding.find_specifics`):
    a capital that only opens a sentence ("Much of the debate ...") is no name, and a list item's
    number ("3. Warsaw lies ...") asserts nothing. Whether each is supported is judged here,
    apart from the library's check: names as words, case-insensitively, a plural or possessive
    matching its stem ("Normans" / "Norman's"), and a name of two or more words as that name, in the
    library's reading of a name (`grounding.name_in`): its words together and in order in one quote
    or in the question, never gathered from several ("European" in one quote and "Council" in
    another do not name the "European Council", issue 25); numbers by value, where a number one sum,
    difference or product away from two quoted numbers, or equal to the count of quotes, is
    supported (a derived answer that shows where it came from). An empty list means supported.
    """
    from ctxagent.grounding import Specific, find_specifics, is_phrase_name, name_in, name_sequence, plain_word

    support = " ".join([*quotes, question])
    words = {plain_word(w) for w in normalize(support).split()}
    sequences = [name_sequence(text) for text in [*quotes, question]]
    numbers = numbers_in(support)
    quoted = [x for q in quotes for x in numbers_in(q)] + numbers_in(question)
    specifics = find_specifics(answer)

    def name_found(name: Specific) -> bool:
        if is_phrase_name(name.words):
            return any(name_in(name.words, sequence) for sequence in sequences)
        return not normalize(name.text) or {plain_word(w) for w in normalize(name.text).split()} <= words

    missing = [s.text for s in specifics if s.kind == "name" and not name_found(s)]
    asserted = [(s.start, s.end) for s in specifics if s.kind in ("number", "date")]
    for match in _NUMBER.finditer(answer):
        if not any(start <= match.start() and match.end() <= end for start, end in asserted):
            continue
        value = float(match.group(0).replace(",", ""))
        if not _derivable(value, quoted if quoted else numbers, len(quotes)):
            missing.append(match.group(0))
    return list(dict.fromkeys(missing))
