"""One question over a whole corpus: retrieve across it, read the best documents, cite each.

Retrieve: the index finds the best chunks anywhere in the corpus; the documents they
come from are ranked by their best chunk, and those scoring at least
`min_relative_score` of the best document (at most `max_documents`) are read.

Map: each selected document is read by the recipe (default `auto`: one prompt while
the passages fit the window, map_reduce when not), through its retrieved passages
(adjacent chunks merged) given as documents of their own (`report.docx@1200`). All
documents share one RunContext, so the budget holds for the whole question. A
document's answer counts only if the recipe found one and cites a quote that shares
a word with the question, so a small model's made-up reply about an unrelated
document is dropped.

Reduce: one document answered: its answer. Several: one more call answers from the
verified quotes the documents gave (facts from different files side by side, which is
what compare / list / count questions need), citing all of them. Every citation is
mapped back to the whole document (offsets in its full text), so
`corpus.get(c.doc_id).text[c.start:c.end] == c.quote` holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from ctxagent.corpus.index import CorpusIndex, open_index
from ctxagent.corpus.source import Corpus
from ctxagent.defaults import DEFAULT_RECIPE
from ctxagent.engines.base import Engine, SamplingParams
from ctxagent.errors import BudgetExhausted, InputError
from ctxagent.grounding import check_answer
from ctxagent.recipes import get_recipe, steps
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.asked import not_given
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.prompts import facts_answer_prompt
from ctxagent.recipes.reading import NOT_FOUND, is_none, parse_reply, relevance
from ctxagent.scaffolding import ANSWER_STOPS
from ctxagent.types import Answer, Budget, Citation, Document

@dataclass(frozen=True)
class Passage:
    """A span of a corpus document the recipe reads, and where it sits in the whole document."""

    doc_id: str
    start: int
    end: int
    chunks: tuple[tuple[int, int, str], ...] = ()  # (start, end, text) of the indexed chunks it joins

    @property
    def id(self) -> str:
        return f"{self.doc_id}@{self.start}"


def select_passages(index: CorpusIndex, question: str, k: int, max_documents: int, min_relative_score: float = 0.5) -> tuple[list[Passage], int]:
    """Passages of the best documents among the top `k` chunks, best document first; and the hit count."""
    hits = index.search(question, k)
    best: dict[str, float] = {}
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for hit in hits:  # best first: a document ranks by its best chunk
        best.setdefault(hit.chunk.doc_id, hit.score)
        spans.setdefault(hit.chunk.doc_id, []).append((hit.chunk.start, hit.chunk.end, hit.chunk.text))
    top = max(best.values(), default=0.0)
    order = [d for d in best if top <= 0 or best[d] >= min_relative_score * top][:max_documents]
    passages: list[Passage] = []
    for doc_id in order:
        merged: list[tuple[int, int, list[tuple[int, int, str]]]] = []
        for start, end, text in sorted(spans[doc_id]):
            if merged and start <= merged[-1][1] + 2:  # adjacent chunks read as one passage
                first, last, parts = merged[-1]
                merged[-1] = (first, max(last, end), [*parts, (start, end, text)])
            else:
                merged.append((start, end, [(start, end, text)]))
        passages.extend(Passage(doc_id, start, end, tuple(parts)) for start, end, parts in merged)
    return passages, len(hits)


def ask_corpus(
    run: RunContext | Engine,
    corpus: Corpus | CorpusIndex,
    question: str,
    *,
    recipe: str = DEFAULT_RECIPE,
    budget: Budget | None = None,
    k: int = 8,
    max_documents: int = 4,
    min_relative_score: float = 0.5,
    update: bool = True,
    index_options: dict[str, Any] | None = None,
    **recipe_options: Any,
) -> Answer:
    """Answer `question` from the documents of `corpus` that retrieval selects, citing each by id.

    run: the RunContext of the question (ContextAgent.ask passes its own, so events stream and the
    budget holds), or an Engine (a context is made with `budget`).
    corpus: a Corpus (its index is updated first unless `update=False`) or a CorpusIndex
    (used as it is: the batch runner updates once for all its questions).
    """
    if k < 1 or max_documents < 1 or not 0 <= min_relative_score <= 1:
        raise InputError(f"k and max_documents must be positive and min_relative_score in [0, 1]; got {k}, {max_documents}, {min_relative_score}")
    began = time.perf_counter()
    # A CorpusIndex is used as it is (loaded if need be); a Corpus is brought up to date first.
    index = open_index(corpus, update=update and not isinstance(corpus, CorpusIndex), **(index_options or {}))
    passages, n_hits = select_passages(index, question, k, max_documents, min_relative_score)
    if isinstance(run, RunContext):  # indexing and search are not reading: they do not count against max_seconds
        ctx = run
        ctx.started += time.perf_counter() - began
    else:
        ctx = RunContext(engine=run, budget=budget or Budget())
    documents = {doc_id: index.corpus.get(doc_id) for doc_id in dict.fromkeys(p.doc_id for p in passages)}
    # Every file that could not be read is named, with why: an answer never hides a document it could not see.
    notes = [f"could not read {doc_id}: {why}" for doc_id, why in sorted(index.failed.items())]
    readable: list[Passage] = []
    for p in passages:
        if any(documents[p.doc_id].text[start:end] != text for start, end, text in p.chunks):
            notes.append(f"{p.doc_id} changed since it was indexed; run `ctxagent index` again to read its new text")
        else:
            readable.append(p)
    selected = list(dict.fromkeys(p.doc_id for p in readable))
    ctx.trace.add("corpus_retrieve", seconds=round(time.perf_counter() - began, 3), indexed_documents=len(index.corpus), hits=n_hits, documents=selected, passages=len(readable))
    name = f"corpus:{recipe}"
    if not readable:
        return ctx.answer(NOT_FOUND, recipe=name, notes=[*notes, f"nothing in the {len(index.corpus)} documents of the corpus matches the question"])
    notes.append(f"searched {len(index.corpus)} documents; read retrieved passages of {len(selected)}: {', '.join(selected)}")
    answers: list[tuple[str, Answer]] = []
    for doc_id in selected:  # map: the recipe reads each selected document's passages
        views = [_view(p, documents[doc_id]) for p in readable if p.doc_id == doc_id]
        answer = run_recipe(get_recipe(recipe, **recipe_options), ctx, views, question)
        by_view = {v.id: v for v in views}
        answer.citations = [_to_document(c, by_view[c.doc_id]) for c in answer.citations if c.doc_id in by_view]
        ctx.trace.add("corpus_document", doc=doc_id, recipe=answer.recipe, answered=_answers(answer, question, documents), text=answer.text[:160], citations=[c.quote[:80] for c in answer.citations])
        answers.append((doc_id, answer))
        if answer.partial:
            notes.append(f"the budget ran out while reading {doc_id}; later documents were not read")
            break
    final = _reduce(ctx, name, question, answers, notes, documents)
    return steps.finish(final, list(documents.values()))


def _answers(answer: Answer, question: str, documents: dict[str, Document]) -> bool:
    """A document answered: the recipe found something and cites a quote whose paragraph is
    about the question (a quote alone may be a fragment such as "is 480 pounds")."""
    if is_none(answer.text) or answer.text == NOT_FOUND:
        return False
    return any(relevance(_paragraph(documents[c.doc_id].text, c.start, c.end), question) > 0 for c in answer.citations if c.doc_id in documents)


def _paragraph(text: str, start: int, end: int) -> str:
    """The paragraph(s) around text[start:end]."""
    left = text.rfind("\n\n", 0, start)
    right = text.find("\n\n", end)
    return text[left + 2 if left >= 0 else 0 : right if right >= 0 else len(text)]


def _reduce(ctx: RunContext, name: str, question: str, answers: Sequence[tuple[str, Answer]], notes: list[str], documents: dict[str, Document]) -> Answer:
    partial = any(a.partial for _, a in answers)
    found = [(doc_id, a) for doc_id, a in answers if _answers(a, question, documents)]
    for _, a in answers:
        notes.extend(n for n in a.notes if n not in notes)
    if not found:
        return ctx.answer(NOT_FOUND, recipe=name, partial=partial, notes=[*notes, "no selected document answered the question"])
    if len(found) == 1:
        doc_id, a = found[0]
        return ctx.answer(a.text, recipe=name, citations=a.citations, partial=partial, notes=[*notes, f"answered from {doc_id}"], basis=a.basis)
    citations = [c for _, a in found for c in a.citations]
    quotes = list(dict.fromkeys(c.quote for c in citations))
    try:
        [completion] = ctx.generate([facts_answer_prompt(quotes, question)], SamplingParams(max_new_tokens=ctx.budget.max_new_tokens, stop=ANSWER_STOPS), step="corpus_reduce", documents=len(found))
        reply = parse_reply(completion.text, len(quotes), quotes)  # drops the "Facts used:" line the prompt asks for
        text = reply.text
    except BudgetExhausted as exc:
        text, partial = "", True
        notes.append(f"{exc} before the step that combines the documents' answers")
    basis = "stated"
    if is_none(text) or not _answers_from(reply.checked, quotes, question):
        text, basis = " ".join(quotes), "quote"  # the verified quotes themselves beat a reply that says nothing, or more than they do
        notes.append("the combined answer is the documents' verified quotes")
    combined = f"combined the answers of {len(found)} documents: {', '.join(d for d, _ in found)}"
    return ctx.answer(text, recipe=name, citations=citations, partial=partial, notes=[*notes, combined], basis=basis)


def _answers_from(reply: str, quotes: Sequence[str], question: str) -> bool:
    """A combined reply stands when the quotes support it and it gives what the question asks
    for (ctxagent.recipes.asked), as a recipe's answer must."""
    grounding = check_answer(reply, quotes, question)
    return grounding.supported and not not_given(reply, question, grounding.derived)


def _view(passage: Passage, document: Document) -> Document:
    return Document(id=passage.id, text=document.text[passage.start : passage.end], metadata={"corpus_doc": passage.doc_id, "offset": passage.start})


def _to_document(citation: Citation, view: Document) -> Citation:
    offset = int(view.metadata["offset"])
    return Citation(doc_id=view.metadata["corpus_doc"], start=citation.start + offset, end=citation.end + offset, quote=citation.quote)
