"""Questions that offer their answers: multiple choice and yes/no always get an option.

One of a choice question's options is right, and a yes/no question is answered yes or
no, so "NOT FOUND" is never the best answer to them (issue 25: 5 of Qwen2.5-Coder-0.5B's
8 NOT FOUND answers were to choice questions). When the model's own reply picks no
option, or picks one that its evidence does not support (ctxagent.grounding: a name it
does not state, a value it contradicts), the option is chosen by the evidence:

- an option whose words the evidence contradicts ("a parrot" where a fact says
  "tortoise"; "Is it purple?" where a fact says "black") is ruled out;
- the rest are ranked by how much the evidence raises the engine's log-probability of
  the option after the question (log p(option | facts, question) - log p(option |
  question), the domain-conditional PMI of Holtzman et al., 2021, so an option is not
  preferred for being short or common), in one batched `ctx.score` call, plus how many
  of the option's own words the evidence states.

The model's own pick stands whenever it is supported, so a capable model is never
overruled by this; the scores decide only where it gave no supported option. One exception:
a yes/no question whose claim a passage states outright (`states_claim`: every word of the
question beyond its frame, each number, date and name, no negation, no hedge) is answered
Yes, and that Yes is the one option whose citations state it (Answer.basis "stated"); any
other verdict only rests on the evidence (basis "option"), a No above all, which a passage
can contradict but rarely states.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from ctxagent.citations import content_words
from ctxagent.errors import BudgetExhausted
from ctxagent.grounding import check_answer, chosen_option, negated, question_options, same_stem
from ctxagent.recipes.context import RunContext

_YES_NO_QUESTION = re.compile(
    r"^\W*(?:is|was|are|were|do|does|did|has|have|had|can|could|will|would|should|may|might|must|shall|isn't|wasn't|doesn't|didn't|aren't|weren't|hasn't|haven't)\b"
    r"|\btrue or false\b|\b(?:answer|reply) (?:with )?yes or no\b",
    re.IGNORECASE,
)
_INSTRUCTION = re.compile(r"\s*(?:answer|reply)\b[^.?!]*\b(?:letter|option|yes or no|true or false)\b[^.?!]*[.?!]?\s*$", re.IGNORECASE)
# "Is the flag blue or green?" asks which, not whether ("true or false" and "yes or no" aside).
_ALTERNATIVES = re.compile(r"\b(?!true\b|yes\b)\w+\s+or\s+(?!false\b|no\b)\w+", re.IGNORECASE)
_VERDICT_WORDS = {"yes": 0, "true": 0, "correct": 0, "no": 1, "false": 1, "incorrect": 1}
# Words of a yes/no question that a passage stating its claim need not repeat: the question's frame.
_FRAME_WORDS = frozenset(
    "is was are were be been being do does did has have had can could will would shall should may might must "
    "the a an of in on at to by for with from into and or its it this that these those there their his her "
    "true false yes no".split()
)
# A passage that hedges, reports, wishes or conditions a claim does not state it ("a report soon
# followed that Mr. Bingley was to bring twelve ladies": he brought five).
_HEDGES = re.compile(
    r"\b(?:may|might|could|would|should|possibly|perhaps|probably|likely|reportedly|allegedly|supposedly|"
    r"reports?|reported|rumou?rs?|rumou?red|say|says|said|claims?|claimed|believes?|believed|thinks?|thought|"
    r"expects?|expected|hopes?|hoped|fears?|feared|wish(?:es|ed)?|intends?|intended|plans?|planned|idea|"
    r"seems?|seemed|appears?|appeared|supposed?|fancied|imagined?|wonder(?:s|ed)?|if|unless|whether|was to|were to)\b",
    re.IGNORECASE,
)
_TRUE_OR_FALSE = re.compile(r"^\W*true\s+or\s+false\W*", re.IGNORECASE)
# Weight of the share of an option's own words that the evidence states, against the PMI (nats).
LEXICAL_WEIGHT = 2.0
# How the engine reads an option after the evidence (plain text: scoring takes no chat template).
_WITH = "{facts}\n\nQuestion: {stem}\nAnswer:"
_WITHOUT = "Question: {stem}\nAnswer:"


@dataclass
class Choices:
    """The options a question offers: letters and texts of a choice question, or Yes / No."""

    kind: str  # "choice" | "yes_no"
    stem: str  # the question without its options and answering instruction
    labels: list[str]
    texts: list[str]

    def answer(self, i: int) -> str:
        """The answer text for option i: "B) a parrot", or "Yes" / "No"."""
        return f"{self.labels[i]}) {self.texts[i]}" if self.kind == "choice" else self.labels[i]


@dataclass
class Pick:
    """The option chosen by the evidence, with each option's score and the facts that back it."""

    index: int
    scores: list[float]
    ruled_out: list[int] = field(default_factory=list)
    supporting: list[int] = field(default_factory=list)  # indexes into the facts
    how: str = ""
    stated: bool = False  # the supporting facts state the option (Answer.basis "stated"), not only favour it


def choices_of(question: str) -> Choices | None:
    """The options `question` offers, or None for an open question."""
    options = question_options(question)
    if options:
        first = re.search(r"\(?\bA[).:]\s", question)
        stem = question[: first.start()].strip() if first else question
        labels = sorted(options)
        texts = [_INSTRUCTION.sub("", options[k]).strip().rstrip(".").strip() for k in labels]
        return Choices("choice", stem, labels, texts)
    if _YES_NO_QUESTION.search(question) and not _ALTERNATIVES.search(_INSTRUCTION.sub("", question)):
        return Choices("yes_no", _INSTRUCTION.sub("", question).strip(), ["Yes", "No"], ["yes", "no"])
    return None


def picked(choices: Choices, reply: str) -> int | None:
    """The option a reply picks ("B", "(B) a parrot", the one option text it names; its yes/no verdict)."""
    if choices.kind == "choice":
        letter = chosen_option(reply, dict(zip(choices.labels, choices.texts)))
        if letter:
            return choices.labels.index(letter)
        low = reply.lower()
        named = [i for i, t in enumerate(choices.texts) if t and t.lower() in low]
        return named[0] if len(named) == 1 else None
    for word in re.findall(r"[a-z]+", reply.lower()):
        if word in _VERDICT_WORDS:
            return _VERDICT_WORDS[word]
        if word in {"not", "found", "none"}:
            return None
    return None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", re.sub(r"['’]s\b", "", text.lower()))


def states_claim(stem: str, fact: str) -> bool:
    """Whether `fact` states what the yes/no question `stem` asks to confirm: every word of the
    question beyond its frame (`_FRAME_WORDS`) stands in the fact, each of its numbers, dates and
    names is stated there (ctxagent.grounding), and neither the question nor the fact negates,
    nor does the fact hedge or condition. "Was the lighthouse built in 1872?" is stated by "The
    lighthouse was built in 1872 by Ada Moss."; not by "... built in 1890", "... was not built
    in 1872", "... may have been built in 1872", and "Was it demolished in 1872?" not at all."""
    stem = _TRUE_OR_FALSE.sub("", stem)
    if negated(stem) or negated(fact) or _HEDGES.search(fact):
        return False
    words = [w for w in _words(stem) if w not in _FRAME_WORDS]
    fact_words = set(_words(fact))
    if not words or not all(any(same_stem(w, f) for f in fact_words) for w in words):
        return False
    verdict = check_answer("Yes", [fact], stem)
    return verdict.supported and not verdict.contradicted


def stating_facts(choices: Choices, facts: Sequence[str]) -> list[int]:
    """The facts that state a yes/no question's claim (`states_claim`); none for other questions."""
    if choices.kind != "yes_no":
        return []
    return [i for i, fact in enumerate(facts) if states_claim(choices.stem, fact)]


def _question_for(choices: Choices, i: int) -> str:
    """What choosing option i asserts, as check_answer reads it."""
    if choices.kind == "choice":
        listed = " ".join(f"({k}) {t}" for k, t in zip(choices.labels, choices.texts))
        return f"{choices.stem} {listed}"
    return choices.stem


def pick_option(ctx: RunContext, choices: Choices, facts: Sequence[str], step: str = "answer:option", stating: Sequence[int] | None = None) -> Pick:
    """The option the evidence supports best (see the module docstring); never none. `stating`:
    `stating_facts` of these facts where the caller has it already."""
    n = len(choices.labels)
    ruled_out = []
    for i in range(n):
        if i == 1 and choices.kind == "yes_no":
            continue  # "No" asserts nothing to contradict
        verdict = check_answer(choices.answer(i), list(facts), _question_for(choices, i))
        if verdict.contradicted:
            ruled_out.append(i)
    stating = list(stating_facts(choices, facts) if stating is None else stating)
    if stating:  # a passage states the claim: Yes, without scoring (a contradiction found elsewhere notwithstanding)
        ctx.trace.add(step, kind=choices.kind, stating=stating, ruled_out=ruled_out, chosen=choices.labels[0])
        return Pick(0, [], ruled_out, stating, "a passage states what the question asks to confirm", stated=True)
    lexical = [0.0] * n
    supporting: list[list[int]] = [[] for _ in range(n)]
    stem_words = set(content_words(choices.stem))
    fact_words = [set(content_words(f)) for f in facts]
    if choices.kind == "choice":
        for i, text in enumerate(choices.texts):
            own = [w for w in content_words(text) if w not in stem_words]
            if own:
                hits = [j for j, words in enumerate(fact_words) if any(w in words for w in own)]
                lexical[i] = sum(any(w in words for words in fact_words) for w in own) / len(own)
                supporting[i] = hits
    pmi = [0.0] * n
    how = "log-probs of each option given the evidence"
    try:
        pmi = _pmi(ctx, choices, facts, step)
    except BudgetExhausted:
        how = "the evidence's words (no engine call left to score the options)"
    scores = [pmi[i] + LEXICAL_WEIGHT * lexical[i] for i in range(n)]
    if choices.kind == "yes_no" and 0 in ruled_out:
        best = 1
        how = "the evidence contradicts what the question asks to confirm"
    else:
        allowed = [i for i in range(n) if i not in ruled_out] or list(range(n))
        best = max(allowed, key=lambda i: scores[i])
    ctx.trace.add(step, kind=choices.kind, scores=[round(s, 3) for s in scores], pmi=[round(p, 3) for p in pmi], lexical=[round(x, 3) for x in lexical], ruled_out=ruled_out, chosen=choices.labels[best])
    return Pick(best, scores, ruled_out, supporting[best], how)


def _pmi(ctx: RunContext, choices: Choices, facts: Sequence[str], step: str) -> list[float]:
    """log p(option | facts, question) - log p(option | question), summed over the option's tokens."""
    listed = "\n".join(f"- {f}" for f in facts)
    texts = [f" {choices.texts[i] if choices.kind == 'choice' else choices.labels[i]}" for i in range(len(choices.labels))]
    with_facts = _WITH.format(facts=listed, stem=choices.stem)
    without = _WITHOUT.format(stem=choices.stem)
    scores = ctx.score(texts * 2, [with_facts] * len(texts) + [without] * len(texts), step=f"{step}:score", options=len(texts))
    sums = [sum(s.logprobs) for s in scores]
    n = len(texts)
    return [sums[i] - sums[n + i] for i in range(n)]
