"""`direct`: put the document in the prompt and ask; truncate, and say so, when it does not fit.

The baseline every other recipe is measured against, and the right choice
whenever the document fits the context window. Its answer is grounded like every
other recipe's: the numbers, dates and names it states must be in (or computed
from) the sentences it read, which become its citations; otherwise a sentence about
the question, or NOT FOUND, is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ctxagent.boilerplate import boilerplate_spans, in_spans, is_boilerplate
from ctxagent.chunking import prefix_within, sentence_spans
from ctxagent.citations import citation_for, content_words, ground_answer
from ctxagent.defaults import TEMPLATE_SLACK
from ctxagent.engines.base import SamplingParams
from ctxagent.grounding import check_answer, find_specifics
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.arithmetic import compute, computed, operation
from ctxagent.recipes.asked import not_given
from ctxagent.recipes.options import Choices, choices_of, pick_option, picked, stating_facts
from ctxagent.recipes.prompts import answer_prompt, document_block
from ctxagent.recipes.reading import COMPUTED_NOTE, NOT_FOUND, OPTION_NOTE, VERDICT_NOTE, declines, on_topic, pick_refused, record_evidence, refusal_reason, relevance
from ctxagent.scaffolding import ANSWER_STOPS, cut_after_answer, strip_scaffolding
from ctxagent.types import Answer, Basis, Citation, Document

# Sentences an answer is checked against (the best matches of the text read), and citations kept.
MAX_CANDIDATES = 12
MAX_CITATIONS = 3
# Sentences of the text read that an option is chosen by, when the model's reply picks none.
OPTION_EVIDENCE = 6
# Notes when the model's answer is refused (followed by why, in parentheses).
QUOTE_NOTE = "the model's answer was not supported by the text it read; the sentence of the text most about the question is the answer"
NOT_FOUND_NOTE = "the model's answer was not supported by the text it read, and no sentence of it is about the question"


@dataclass
class Fit:
    """What of the documents goes in the prompt: the text, the source spans it came from, and notes on truncation."""

    context: str
    regions: list[tuple[str, int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fit_documents(ctx: RunContext, documents: Sequence[Document], question: str) -> Fit:
    """Fit as much of each document as the window (and token budget) allows, with the answer prompt around it."""
    max_new = ctx.budget.max_new_tokens
    available = ctx.engine.context_window - max_new - ctx.prompt_tokens(answer_prompt("", question)) - TEMPLATE_SLACK
    if ctx.budget.max_tokens is not None:
        available = min(available, ctx.budget.max_tokens - max_new - TEMPLATE_SLACK - ctx.usage.total_tokens)
    many = len(documents) > 1
    blocks: list[str] = []
    regions: list[tuple[str, int, int]] = []
    notes: list[str] = []
    for doc in documents:
        label_cost = ctx.count_tokens(document_block(doc.id, "", many)) + 2 if many else 0
        room = available - label_cost
        cut = prefix_within(doc.text, ctx.count_tokens, room) if room > 0 else 0
        if cut < len(doc.text):
            share = 100.0 * cut / max(1, len(doc.text))
            notes.append(
                f"{doc.id}: read the first {cut:,} of {len(doc.text):,} characters ({share:.1f}%), "
                f"all that fits in the {ctx.engine.context_window}-token window; "
                "use recipe 'auto' or a chunking recipe to read the whole document"
            )
        if cut == 0:
            continue
        blocks.append(document_block(doc.id, doc.text[:cut], many))
        regions.append((doc.id, 0, cut))
        available -= label_cost + ctx.count_tokens(doc.text[:cut]) + 2
    ctx.trace.add("fit", documents=len(documents), truncated=bool(notes), regions=[list(r) for r in regions])
    return Fit(context="\n\n".join(blocks), regions=regions, notes=notes)


@dataclass
class DirectReply:
    """The direct answer after grounding: the text (the model's, a quote, or NOT FOUND), its citations and why."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    basis: Basis = "stated"  # Answer.basis


def answer_from(ctx: RunContext, fit: Fit, documents: Sequence[Document], question: str) -> DirectReply:
    """Ask the question over the fitted text; keep the answer only if the sentences read support it."""
    params = SamplingParams(max_new_tokens=ctx.budget.max_new_tokens, stop=ANSWER_STOPS)
    [completion] = ctx.generate([answer_prompt(fit.context, question)], params, step="answer")
    record_evidence(ctx, fit.regions)
    return ground_in_regions(ctx, strip_scaffolding(completion.text), question, documents, fit.regions)


def _candidates(answer: str, question: str, sentences: Sequence[tuple[str, int, int, str]], limit: int = MAX_CANDIDATES) -> list[tuple[str, int, int, str]]:
    """The sentences worth checking an answer against: those sharing its words, its specifics' words,
    or the question's, best first (a whole document's numbers are too many to combine pairwise)."""
    answer_words = set(content_words(answer))
    question_words = set(content_words(question))
    specific_words = {w for s in find_specifics(answer) for w in content_words(s.text)}
    scored = []
    for i, sentence in enumerate(sentences):
        words = set(content_words(sentence[3]))
        score = 2 * len(answer_words & words) + len(question_words & words) + 4 * len(specific_words & words)
        if score:
            scored.append((-score, i))
    return [sentences[i] for _, i in sorted(scored)[:limit]]


def ground_in_regions(ctx: RunContext, reply: str, question: str, documents: Sequence[Document], regions: Sequence[tuple[str, int, int]]) -> DirectReply:
    """Cite the sentences read that support the answer's numbers, dates and names (ctxagent.grounding);
    refuse an answer they do not support: the best sentence about the question, or NOT FOUND. Sentences
    of the text recited after the answer, and debris after it, are cut off (ctxagent.scaffolding)."""
    by_id = {d.id: d for d in documents}
    sentences = [(doc_id, s.start, s.end, by_id[doc_id].text[s.start : s.end]) for doc_id, start, end in regions for s in sentence_spans(by_id[doc_id].text, start, end)]
    text = cut_after_answer(reply.strip(), [s[3] for s in sentences])
    furniture = {doc_id: boilerplate_spans(by_id[doc_id].text) for doc_id, _, _ in regions}
    # Reference lists, "[edit]" headings and footers are not evidence while content sentences exist.
    sentences = [s for s in sentences if not in_spans(s[1], s[2], furniture[s[0]]) and not is_boilerplate(s[3])] or sentences
    candidates = _candidates(text, question, sentences)
    texts = [c[3] for c in candidates]
    grounding = check_answer(text, texts, question)
    choices = choices_of(question)
    stating: list[int] = []
    if choices:
        mine = picked(choices, text)
        stating = stating_facts(choices, texts)
        why = pick_refused(mine, grounding, stating)
        if why:
            ctx.trace.add("answer:refused", reply=text[:160], why=why, unsupported=grounding.unsupported)
            return _option(ctx, choices, question, by_id, sentences, why)
    if operation(question) and not (grounding.supported and computed(grounding)):
        shown = _candidates("", question, sentences)
        calc = compute(question, [c[3] for c in shown])
        if calc and check_answer(calc.text, [c[3] for c in shown], question).supported:
            ctx.trace.add("answer:computed", expression=calc.expression, reply=text[:160])
            cited = [citation_for(by_id[shown[i][0]], shown[i][1], shown[i][2]) for i in calc.facts]
            return DirectReply(text=calc.text, citations=cited, notes=[f"{COMPUTED_NOTE}: {calc.expression}"], basis="computed")
    if declines(text, question):
        return _refuse(ctx, text, question, documents, regions, sentences, "it says the document does not answer")
    if not grounding.supported:
        return _refuse(ctx, text, question, documents, regions, sentences, refusal_reason(grounding), grounding.unsupported)
    if stating or grounding.facts_used:
        used = list(dict.fromkeys([*stating, *grounding.facts_used]))[:MAX_CITATIONS]
        citations = [citation_for(by_id[c[0]], c[1], c[2]) for c in (candidates[i] for i in used)]
    else:
        citations = ground_answer(text, question, documents, regions)
        if not citations and grounding.derived:
            about = _about_question(question, sentences)
            citations = [citation_for(by_id[about[0]], about[1], about[2])] if about else []
        if not citations:
            return _refuse(ctx, text, question, documents, regions, sentences, "it says nothing the document says")
    why = not_given(text, question, grounding.derived)
    if why:
        return _refuse(ctx, text, question, documents, regions, sentences, why)
    ctx.trace.add("answer:grounded", derived=grounding.derived, checks=[[s.specific.text, s.how] for s in grounding.supports])
    if choices and choices.kind == "yes_no" and not stating:
        return DirectReply(text=text, citations=citations, notes=[VERDICT_NOTE], basis="option")
    return DirectReply(text=text, citations=citations)


def _option(ctx: RunContext, choices: Choices, question: str, by_id: dict[str, Document], sentences: Sequence[tuple[str, int, int, str]], why: str) -> DirectReply:
    """A choice or yes/no question always gets an option: the one the sentences most about the
    question (and its options) support best, cited with them (recipes/options.py)."""
    shown = _candidates("", question, sentences, limit=OPTION_EVIDENCE)
    pick = pick_option(ctx, choices, [c[3] for c in shown])
    cited = [shown[i] for i in pick.supporting[:MAX_CITATIONS]] or shown[:1]
    return DirectReply(
        text=choices.answer(pick.index),
        citations=[citation_for(by_id[c[0]], c[1], c[2]) for c in cited],
        notes=[f"{OPTION_NOTE} ({pick.how}; {why})"],
        basis="stated" if pick.stated else "option",
    )


def _about_question(question: str, sentences: Sequence[tuple[str, int, int, str]]) -> tuple[str, int, int, str] | None:
    """The sentence read that holds most of the question's content words, if it is about the question."""
    best = max(sentences, key=lambda s: relevance(s[3], question), default=None)
    return best if best and on_topic(best[3], question) else None


def _refuse(
    ctx: RunContext,
    reply: str,
    question: str,
    documents: Sequence[Document],
    regions: Sequence[tuple[str, int, int]],
    sentences: Sequence[tuple[str, int, int, str]],
    why: str,
    unsupported: Sequence[str] = (),
) -> DirectReply:
    """The sentence the answer points at (or the one most about the question) when it is about the question, else NOT FOUND."""
    ctx.trace.add("answer:refused", reply=reply[:160], why=why, unsupported=list(unsupported))
    by_id = {d.id: d for d in documents}
    pointed = [c for c in ground_answer(reply, question, documents, regions, max_citations=1) if on_topic(c.quote, question)] if not declines(reply, question) else []
    about = _about_question(question, sentences)
    if pointed:
        return DirectReply(text=pointed[0].quote, citations=pointed, notes=[f"{QUOTE_NOTE} ({why})"], basis="quote")
    if about:
        return DirectReply(text=about[3], citations=[citation_for(by_id[about[0]], about[1], about[2])], notes=[f"{QUOTE_NOTE} ({why})"], basis="quote")
    return DirectReply(text=NOT_FOUND, notes=[f"{NOT_FOUND_NOTE} ({why}; {len(sentences)} sentences read, none about the question)"], basis="none")


@register("direct")
class DirectRecipe:
    name = "direct"

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        fit = fit_documents(ctx, documents, question)
        reply = answer_from(ctx, fit, documents, question)
        return ctx.answer(reply.text, recipe=self.name, citations=reply.citations, notes=[*fit.notes, *reply.notes], basis=reply.basis)
