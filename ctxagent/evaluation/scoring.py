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
