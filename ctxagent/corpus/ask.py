"""One question over a whole corpus: retrieve across it, read the best documents, cite each.

The index finds the chunks that best match the question anywhere in the corpus; the
documents they come from are ranked by their best chunk and the first `max_documents`
are read. Each selected document is read through its retrieved passages (adjacent
chunks merged), given to the recipe as documents of their own (`report.docx@1200`), and
every citation is mapped back to the whole document (`report.docx`, offsets in its
full text), so `corpus.get(c.doc_id).text[c.start:c.end] == c.quote` holds. The
default recipe is `auto` over the selected passages: while they fit the window (the
usual case: k chunks of ~200 tokens) it reads them all in one prompt, so compare / list /
count questions see every selected document side by side; once they do not fit, it
map-reduces over them (one batched call reads every passage, one more answers from the
verified facts). `recipe="map_reduce"` forces that path. With the embedded 135M model the
one-prompt path answers questions whose map step it fails (it replies "not specified"
to a passage holding the answer), which is why `auto` is the default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ctxagent.batch.corpus import Corpus
from ctxagent.corpus.index import CorpusIndex
from ctxagent.engines.base import Engine
from ctxagent.pages import annotate_pages
from ctxagent.recipes import get_recipe
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import Answer, Budget, Citation, Document

DEFAULT_CORPUS_RECIPE = "auto"


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


def select_passages(index: CorpusIndex, question: str, k: int, max_documents: int) -> tuple[list[Passage], int]:
    """Passages of the best `max_documents` documents among the top `k` chunks; and the hit count."""
    hits = index.search(question, k)
    order: list[str] = []
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for hit in hits:  # best first: a document ranks by its best chunk
        doc_id = hit.chunk.doc_id
        if doc_id not in spans:
            if len(order) == max_documents:
                continue
            order.append(doc_id)
            spans[doc_id] = []
        spans[doc_id].append((hit.chunk.start, hit.chunk.end, hit.chunk.text))
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
    engine: Engine,
    corpus: Corpus | CorpusIndex,
    question: str,
    *,
    recipe: str = DEFAULT_CORPUS_RECIPE,
    budget: Budget | None = None,
    k: int = 8,
    max_documents: int = 4,
    update: bool = True,
    index_options: dict[str, Any] | None = None,
    **recipe_options: Any,
) -> Answer:
    """Answer `question` from the documents of `corpus` that retrieval selects, citing each by id.

    corpus: a Corpus (its index is updated first unless `update=False`) or a CorpusIndex
    already updated (reused as is: the batch runner updates once for all questions).
    """
    began = time.perf_counter()
    if isinstance(corpus, CorpusIndex):
        index = corpus
        if index.retriever is None:
            index.load()
        report = None
    else:
        index = CorpusIndex(corpus, **(index_options or {}))
        report = index.update() if update else None
        if not update:
            index.load()
    passages, n_hits = select_passages(index, question, k, max_documents)
    ctx = RunContext(engine=engine, budget=budget or Budget())
    documents = {doc_id: index.corpus.get(doc_id) for doc_id in dict.fromkeys(p.doc_id for p in passages)}
    notes: list[str] = []
    readable = []
    for p in passages:
        if any(documents[p.doc_id].text[start:end] != text for start, end, text in p.chunks):
            notes.append(f"{p.doc_id} changed since it was indexed; run `ctxagent index` again to read its new text")
            continue
        readable.append(p)
    ctx.trace.add(
        "corpus_retrieve", seconds=round(time.perf_counter() - began, 3), indexed_documents=len(index.corpus),
        hits=n_hits, documents=list(dict.fromkeys(p.doc_id for p in readable)), passages=len(readable),
        **({"index_update": report.model_dump(include={"added", "changed", "removed", "embedded_chunks"})} if report else {}),
    )
    if not readable:
        return ctx.answer("", recipe=recipe, notes=[*notes, f"nothing in the {len(index.corpus)} documents of the corpus matches the question"])
    views = [Document(id=p.id, text=documents[p.doc_id].text[p.start : p.end], metadata={"corpus_doc": p.doc_id, "offset": p.start}) for p in readable]
    answer = run_recipe(get_recipe(recipe, **recipe_options), ctx, views, question)
    by_view = {p.id: p for p in readable}
    answer.citations = [_to_document(c, by_view[c.doc_id]) for c in answer.citations if c.doc_id in by_view]
    read = ", ".join(dict.fromkeys(p.doc_id for p in readable))
    answer.notes = [*notes, f"searched {len(index.corpus)} documents; read {len(readable)} retrieved passages of: {read}", *answer.notes]
    annotate_pages(answer, list(documents.values()))
    return answer


def _to_document(citation: Citation, passage: Passage) -> Citation:
    return Citation(doc_id=passage.doc_id, start=citation.start + passage.start, end=citation.end + passage.start, quote=citation.quote)
