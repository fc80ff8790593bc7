"""Shared steps of the long-document recipes: fit chunks to the window, keep verified
facts, and answer from them.

Every long-document recipe ends the same way: its facts are spans cut from the source
(chosen by scores in ctxagent.recipes.evidence, never written by the model), and the final
answer is written from those facts, grounded in them (every number, date and name it
asserts is stated by the facts it used or computed from them, see ctxagent.grounding) and
cited with them. What the answer step was shown is recorded as the trace's "evidence" step.
Keeping these steps here means each recipe is only its plan: which pieces to read, in
which order, when to stop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from ctxagent.chunking import chunk_document
from ctxagent.citations import content_words, ground_answer
from ctxagent.defaults import TEMPLATE_SLACK
from ctxagent.engines.base import Prompt, SamplingParams
from ctxagent.errors import BudgetExhausted, InputError
from ctxagent.grounding import Grounding, Support, check_answer, same_stem
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.arithmetic import compute, computed, operation
from ctxagent.recipes.asked import not_given
from ctxagent.recipes.options import Choices, choices_of, pick_option, picked, stating_facts
from ctxagent.recipes.prompts import facts_answer_prompt
from ctxagent.scaffolding import ANSWER_STOPS, cut_after_answer, strip_scaffolding
from ctxagent.types import NOT_FOUND, Answer, Chunk, Citation, Document

# An extraction reply is one copied sentence; longer replies are rambling.
EXTRACT_TOKENS = 40
# How many of the best facts the answer step is shown (fewer where the window or budget is short).
ANSWER_FACTS = 5
# Note added when the model's answer was replaced by the best quote (followed by why, in parentheses).
FALLBACK_NOTE = "the model's answer was not supported by the verified quotes; the best quote is the answer"
# Note added when the model's answer was refused and no verified quote is about the question.
NOT_FOUND_NOTE = "the model's answer was not supported by the verified quotes, and no quote answers the question"

# Replies that mean "this text does not answer", in the ways small models phrase it.
_NONE_REPLY = re.compile(
    r"^\W*(none|no\b|n/a|not found|nothing)|"
    r"\bnot (?:given|stated|mentioned|specified|revealed|provided|found|included|available|known|clear|present)\b|"
    r"\b(?:does|do|is|did) not (?:state|mention|say|contain|include|provide|answer)|"
    r"\bno (?:information|mention|answer)\b|\bdoesn't (?:state|mention|say)",
    re.IGNORECASE,
)


def is_none(reply: str) -> bool:
    """True when a reply says the text holds no answer (NONE, "not given", "not stated", ...)."""
    return not reply.strip() or bool(_NONE_REPLY.search(reply))


@dataclass
class Fact:
    """A verified sentence: `citation.quote` is exactly the source at its offsets."""

    citation: Citation
    relevance: float
    chunk: int = -1  # index into the recipe's chunk list where it was found
    about: bool = False  # about the question in other words (a paraphrase the encoder singled out), see evidence.py

    @property
    def text(self) -> str:
        return self.citation.quote


@dataclass
class Facts:
    """Verified facts collected while reading, deduplicated by span, best first on demand."""

    items: list[Fact] = field(default_factory=list)

    def add(self, facts: Sequence[Fact]) -> int:
        seen = {(f.citation.doc_id, f.citation.start) for f in self.items}
        added = 0
        for fact in facts:
            key = (fact.citation.doc_id, fact.citation.start)
            if key not in seen:
                seen.add(key)
                self.items.append(fact)
                added += 1
        return added

    def best(self, n: int | None = None) -> list[Fact]:
        ranked = sorted(self.items, key=lambda f: (-f.relevance, f.citation.doc_id, f.citation.start))
        return ranked if n is None else ranked[:n]

    def __len__(self) -> int:
        return len(self.items)


# -- chunking to the window -----------------------------------------------------------------
def window_room(ctx: RunContext, frame: Prompt, max_new: int) -> int:
    """Tokens of document text that fit in one prompt built on `frame` (the prompt with empty text)."""
    return ctx.engine.context_window - max_new - ctx.prompt_tokens(frame) - TEMPLATE_SLACK


def fit_chunks(
    ctx: RunContext,
    documents: Sequence[Document],
    room: int,
    chunk_tokens: int | None = None,
    overlap_sentences: int = 0,
) -> list[Chunk]:
    """Chunks of every document, each small enough to fit `room` tokens (and `chunk_tokens` if set)."""
    size = min(room, chunk_tokens) if chunk_tokens else room
    if size < 32:
        raise InputError(
            f"only {size} tokens of the {ctx.engine.context_window}-token window are left for document text "
            "after the prompt, question and answer; shorten the question, lower max_new_tokens or use a larger window"
        )
    return [c for doc in documents for c in chunk_document(doc, ctx.count_tokens, max_tokens=size, overlap_sentences=overlap_sentences)]


# -- relevance ------------------------------------------------------------------------------
def relevance(quote: str, question: str) -> float:
    """Share of the question's content words the quote contains."""
    q = set(content_words(question))
    return len(q & set(content_words(quote))) / max(1, len(q))


# -- answering from facts -------------------------------------------------------------------
# A fallback quote must be about the question: it holds at least this share of the question's content words.
ON_TOPIC = 0.5
_USED_LINE = re.compile(r"(?im)^[^\S\n]*\W*(?:facts?|sources?)(?:\s+used)?\s*[:#]\s*(?P<ids>[^\n]*)$")
_USED_INLINE = re.compile(r"(?i)[\s(]*\b(?:(?:the\s+)?numbers?\s+of\s+the\s+)?(?:facts?|sources?)\s+(?:I\s+|you\s+)?used\b(?:\s+(?:are|is|were|was))?\s*[:#-]?\s*(?P<ids>(?:\[?\d+\]?(?:\s*(?:,|;|&|and)\s*)?)+)\)?\.?")
_USED_BRACKET = re.compile(r"(?i)\s*[\[(](?:facts?\s*)?(?P<ids>\d+(?:\s*(?:,|;|&|and)\s*\d+)*)[\])]")
_FACT_REFERENCE = re.compile(r"(?i)\bfacts?\s+(?:(?:no\.?|number|#)\s*)?(?P<ids>\d+(?:\s*(?:,|&|and)\s*\d+)*)\b")


@dataclass
class Reply:
    """The answer step's reply, split: the answer text, the facts it says it used (0-based; None when
    it named none), and the text to check (references such as "fact 2" masked, they assert nothing)."""

    text: str
    claimed: list[int] | None
    checked: str


def parse_reply(reply: str, shown: int, facts: Sequence[str] = ()) -> Reply:
    """Split "answer ... Facts used: 1, 3" (or "[1]", "(facts 1 and 3)", "Fact 2 says ...") into the answer
    and the facts it names, leniently: any of those forms, numbers outside 1..shown ignored. Prompt text
    the model wrote back after its answer is cut off, and so are `facts` (the texts shown) recited after
    it (ctxagent.scaffolding)."""
    claimed: list[int] = []

    def numbers(match: re.Match[str]) -> list[int]:
        return [int(n) for n in re.findall(r"\d+", match.group("ids"))]

    def take(match: re.Match[str]) -> str:
        claimed.extend(n - 1 for n in numbers(match) if 1 <= n <= shown)
        return ""

    def take_if_fact_numbers(match: re.Match[str], keep: str) -> str:
        """"[2]" or "(1, 3)" is a reference only when every number in it is a shown fact's ("(1886)" is not)."""
        if not all(1 <= n <= shown for n in numbers(match)):
            return match.group()
        return take(match) or keep

    text = _USED_LINE.sub(take, reply)
    text = _USED_INLINE.sub(take, text)
    text = cut_after_answer(strip_scaffolding(_USED_BRACKET.sub(lambda m: take_if_fact_numbers(m, ""), text)), facts)
    checked = _FACT_REFERENCE.sub(lambda m: take_if_fact_numbers(m, " " * len(m.group())), text)
    return Reply(text=text, claimed=sorted(set(claimed)) if claimed else None, checked=checked)


_YES_NO_QUESTION = re.compile(
    r"^\W*(?:is|was|are|were|do|does|did|has|have|had|can|could|will|would|should|may|might|must|shall|isn't|wasn't|doesn't|didn't)\b|\btrue or false\b",
    re.IGNORECASE,
)
_NO = re.compile(r"^\W*(?:no|false)\b\W*", re.IGNORECASE)


def declines(reply: str, question: str) -> bool:
    """Does a final answer say the text holds no answer? A leading "No" answers a yes/no question
    (then only what follows it may decline: "No, the text does not say"); it declines any other."""
    verdict = _NO.match(reply) if _YES_NO_QUESTION.search(question) else None
    if verdict:
        rest = reply[verdict.end() :]
        return bool(rest.strip()) and is_none(rest)
    return is_none(reply)


def record_evidence(ctx: RunContext, spans: Sequence[tuple[str, int, int]]) -> None:
    """Record what was put in front of the model for the final answer (the eval's evidence recall reads it)."""
    ctx.trace.add("evidence", spans=[[doc_id, start, end] for doc_id, start, end in spans])


def on_topic(quote: str, question: str) -> bool:
    """Is a quote about the question, so that it may stand as the answer when the model's is refused?"""
    return relevance(quote, question) >= ON_TOPIC


def _supported(answer: str, question: str, facts: Sequence[Fact]) -> bool:
    """Does the answer say something the facts say and the question does not, an inflection
    aside? (for answers that assert no specific of their own: "Miss Taylor married." says
    nothing to "Who did Miss Taylor marry?")"""
    asked = set(content_words(question))
    novel = {w for w in content_words(answer) if not any(same_stem(w, q) for q in asked)}
    fact_words = {w for f in facts for w in content_words(f.text)}
    return bool(novel & fact_words)


def _asserted(grounding: Grounding, question: str) -> list[Support]:
    """The answer's specifics that are its own: not those it repeats from the question, even
    where a fact states them too (a name the user asked about is no answer)."""
    asked = set(re.findall(r"[a-z0-9]+", question.lower()))
    return [s for s in grounding.supports if s.how != "question" and not (s.specific.kind == "name" and s.specific.words and set(s.specific.words) <= asked)]


def facts_that_fit(ctx: RunContext, facts: Sequence[Fact], question: str, max_new: int) -> list[Fact]:
    """The best facts whose answer prompt fits the window (and the token budget)."""
    room = window_room(ctx, facts_answer_prompt([], question), max_new)
    left = ctx.tokens_left()
    if left is not None:
        room = min(room, left - max_new - ctx.prompt_tokens(facts_answer_prompt([], question)) - TEMPLATE_SLACK)
    chosen: list[Fact] = []
    for fact in facts:
        cost = ctx.count_tokens(fact.text) + 6
        if cost > room:
            continue
        chosen.append(fact)
        room -= cost
    return chosen


def refusal_reason(grounding: Grounding) -> str:
    """Why an answer is refused, naming what it asserted without support."""
    against = grounding.contradicted
    listed = ", ".join(f"'{u}'" + (f" (the facts say '{against[u]}')" if u in against else "") for u in grounding.unsupported)
    return f"it states {listed}, which the facts shown do not support"


def answer_from_facts(
    ctx: RunContext,
    recipe: str,
    documents: Sequence[Document],
    question: str,
    facts: Facts,
    notes: Sequence[str] = (),
    max_facts: int = ANSWER_FACTS,
) -> Answer:
    """The reduce step shared by all recipes: answer from the verified facts, cite the facts used.

    The model sees the facts numbered and says which it used. Its answer may derive
    (yes/no, a sum, a year gap, an option letter), but every number, date and name in it
    must be supported by the facts shown (ctxagent.grounding). Otherwise the best verified
    quote is the answer when it is about the question, and NOT FOUND when it is not: a
    verified quote is better than an unsupported sentence, and nothing is better than a
    quote that does not answer.
    """
    notes = list(notes)
    choices = choices_of(question)
    if not facts:
        record_evidence(ctx, [])
        ctx.trace.add("answer", found=False)
        if choices:
            return option_answer(ctx, recipe, choices, [], notes, "no passage about the question was found, so the options were scored without evidence")
        return ctx.answer(NOT_FOUND, recipe=recipe, notes=[*notes, "no passage that answers the question was found in the document"])
    max_new = ctx.budget.max_new_tokens
    chosen = facts_that_fit(ctx, facts.best(max_facts), question, max_new)
    if not chosen:
        return _stopped_before_answer(ctx, recipe, facts, facts.best(max_facts), choices, [*notes, "no room left in the budget for the answer step"])
    texts = [f.text for f in chosen]
    try:
        [completion] = ctx.generate([facts_answer_prompt(texts, question)], SamplingParams(max_new_tokens=max_new, stop=ANSWER_STOPS), step="answer", facts=len(chosen))
    except BudgetExhausted as exc:
        return _stopped_before_answer(ctx, recipe, facts, chosen, choices, [*notes, f"{exc} before the answer step"])
    record_evidence(ctx, [(f.citation.doc_id, f.citation.start, f.citation.end) for f in chosen])
    reply = parse_reply(completion.text, len(chosen), texts)
    grounding = check_answer(reply.checked, texts, question)
    stating: list[int] = []
    if choices:
        mine = picked(choices, reply.text)
        stating = stating_facts(choices, texts)
        why = pick_refused(mine, grounding, stating)
        if why:
            ctx.trace.add("answer:refused", reply=reply.text[:160], why=why, unsupported=grounding.unsupported)
            return option_answer(ctx, recipe, choices, chosen, notes, why, stating=stating)
    if operation(question) and not (grounding.supported and computed(grounding)):
        calc = compute(question, texts)
        if calc and check_answer(calc.text, texts, question).supported:
            ctx.trace.add("answer:computed", expression=calc.expression, reply=reply.text[:160], facts=calc.facts)
            return ctx.answer(calc.text, recipe=recipe, citations=[chosen[i].citation for i in calc.facts], notes=[*notes, f"{COMPUTED_NOTE}: {calc.expression}"], basis="computed")
    if declines(reply.text, question):
        return _refuse(ctx, recipe, facts, question, notes, reply.text, "it says the facts do not answer")
    if not grounding.supported:
        return _refuse(ctx, recipe, facts, question, notes, reply.text, refusal_reason(grounding), grounding.unsupported)
    asserted = _asserted(grounding, question)
    if not choices and not asserted and not grounding.derived and not _supported(reply.checked, question, chosen):
        return _refuse(ctx, recipe, facts, question, notes, reply.text, "it says nothing the facts say")
    why = not_given(reply.checked, question, grounding.derived)
    if why:
        return _refuse(ctx, recipe, facts, question, notes, reply.text, why)
    used = sorted(set(stating) | set(reply.claimed or []) | set(grounding.facts_used))
    ctx.trace.add("answer:grounded", claimed=reply.claimed, used=used, derived=grounding.derived, checks=[[s.specific.text, s.how] for s in grounding.supports])
    if used:
        citations = [chosen[i].citation for i in used]
    else:
        regions = [(f.citation.doc_id, f.citation.start, f.citation.end) for f in chosen]
        citations = ground_answer(reply.checked, question, documents, regions) or [chosen[0].citation]
    if choices and choices.kind == "yes_no" and not stating:
        return ctx.answer(reply.text, recipe=recipe, citations=citations, notes=[*notes, VERDICT_NOTE], basis="option")
    return ctx.answer(reply.text, recipe=recipe, citations=citations, notes=notes, basis="stated")


def _stopped_before_answer(ctx: RunContext, recipe: str, facts: Facts, shown: Sequence[Fact], choices: Choices | None, notes: list[str]) -> Answer:
    """The budget ran out before the answer step: a partial answer from the facts found. A choice
    or yes/no question still gets its option (chosen without the engine if need be: the evidence's
    words, or a passage that states the claim), any other question the best verified quote."""
    if not choices:
        return quote_answer(ctx, recipe, facts, notes, partial=True)
    record_evidence(ctx, [(f.citation.doc_id, f.citation.start, f.citation.end) for f in shown])
    return option_answer(ctx, recipe, choices, shown, notes, "the budget ran out before the answer step", partial=True)


def pick_refused(mine: int | None, grounding: Grounding, stating: Sequence[int]) -> str:
    """Why the model's option is not the answer ("" when it stands): it picked none, its evidence
    does not support it, or it answered No where a passage states the claim (`stating_facts`)."""
    if mine is None:
        return "the model picked no option"
    if not grounding.supported:
        return f"the model's pick was refused: {refusal_reason(grounding)}"
    if mine == 1 and stating:
        return "the model answered No where a passage states what the question asks to confirm"
    return ""


# Note on the model's own yes/no verdict when no passage states the question's claim.
VERDICT_NOTE = "the model's verdict: the cited passages bear on the question but do not state the answer"


OPTION_NOTE = "the option best supported by the evidence"
# Note on an answer computed from the cited facts, because the model's answer computed nothing (then the expression).
COMPUTED_NOTE = "the model's answer did not compute what the question asks; computed from the cited facts"


def option_answer(ctx: RunContext, recipe: str, choices: Choices, shown: Sequence[Fact], notes: Sequence[str], why: str, partial: bool = False, stating: Sequence[int] | None = None) -> Answer:
    """A choice or yes/no question always gets an option: the one its evidence supports best
    (recipes/options.py), cited with the facts that name it (else the best fact shown).
    `stating`: the shown facts that state a yes/no claim, where the caller has them already."""
    pick = pick_option(ctx, choices, [f.text for f in shown], stating=stating)
    cited = [shown[i].citation for i in pick.supporting[:3]] or [f.citation for f in shown[:1]]
    basis = "stated" if pick.stated else "option"
    return ctx.answer(choices.answer(pick.index), recipe=recipe, citations=cited, partial=partial, notes=[*notes, f"{OPTION_NOTE} ({pick.how}; {why})"], basis=basis)


def _refuse(ctx: RunContext, recipe: str, facts: Facts, question: str, notes: list[str], reply: str, why: str, unsupported: Sequence[str] = ()) -> Answer:
    """The model's answer is not grounded: the best verified quote if it is about the question, else NOT FOUND."""
    best = facts.best(1)[0]
    ctx.trace.add("answer:refused", reply=reply[:160], why=why, unsupported=list(unsupported))
    if on_topic(best.text, question) or best.about:
        return quote_answer(ctx, recipe, facts, [*notes, f"{FALLBACK_NOTE} ({why})"], record=False)
    read = f"{len(facts)} verified passage(s) read"
    return ctx.answer(NOT_FOUND, recipe=recipe, notes=[*notes, f"{NOT_FOUND_NOTE} ({why}; {read}, none about the question)"])


def quote_answer(ctx: RunContext, recipe: str, facts: Facts, notes: Sequence[str], partial: bool = False, record: bool = True) -> Answer:
    """Answer with the best verified quote itself (no engine call).

    record: add the quote as the evidence step (not when the facts shown to the answer step were already recorded).
    """
    if not facts:
        if record:
            record_evidence(ctx, [])
        return ctx.answer("", recipe=recipe, partial=partial, notes=[*notes, "no passage that answers the question was found before stopping"])
    best = facts.best(1)[0]
    if record:
        record_evidence(ctx, [(best.citation.doc_id, best.citation.start, best.citation.end)])
    return ctx.answer(best.text, recipe=recipe, citations=[best.citation], partial=partial, notes=list(notes), basis="quote")


def partial_answer(ctx: RunContext, recipe: str, question: str, facts: Facts, exc: BudgetExhausted, read: int, total: int) -> Answer:
    """The budget ran out mid-way: say how far the recipe got and answer from the facts found,
    as when it runs out before the answer step (`_stopped_before_answer`): a choice or yes/no
    question its option, any other question the best verified quote. With no fact found there
    is nothing to answer from, and an option then would be a guess: the answer is empty."""
    ctx.trace.add("budget_exhausted", axis=exc.axis, limit=exc.limit, read=read, total=total)
    note = f"{exc}: read {read} of {total} chunks; raise the budget or pick a cheaper recipe to read the rest"
    choices = choices_of(question) if facts else None
    if facts and not choices:
        note += "; the answer is the best verified quote found so far"
    return _stopped_before_answer(ctx, recipe, facts, facts.best(ANSWER_FACTS), choices, [note])


def confirmed(answer: Answer) -> bool:
    """An answer the model wrote from verified facts and that those facts support."""
    return not answer.partial and answer.basis in ("stated", "computed") and bool(answer.citations)
