"""Every long-document recipe, end to end with the real embedded model, on a needle placed
in real long text (Jane Austen's Persuasion, public domain, the evaluation package's
bundled haystack) three and a half times longer than the
model's (capped) window: long enough for six tree leaves, so the memory tree has three levels. Each test asserts the answer and that every citation quote is
the source text at its offsets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ctxagent.citations import verify_citations
from ctxagent.recipes import get_recipe
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import Budget, Document
from tests.grounded import assert_grounded
from tests.texts import text_with_fact

pytestmark = pytest.mark.slow

WINDOW = 1024
NEEDLE = "The secret code to open the blue vault is 4817."
QUESTION = "What is the secret code to open the blue vault?"


@pytest.fixture(scope="module")
def engine_1k():
    from ctxagent.engines import get_engine

    return get_engine("hf", context_window=WINDOW)


@pytest.fixture(scope="module")
def needle_doc(engine_1k) -> Document:
    """About 3.7x the window of real text, the needle paragraph at 60% depth."""
    return Document(id="persuasion", text=text_with_fact(NEEDLE, engine_1k.count_tokens, 3.7 * WINDOW))


@pytest.fixture(scope="module")
def tree_cache(tmp_path_factory) -> Path:
    """One cache for the module, so the memory tree built by one test is reused by the next."""
    return tmp_path_factory.mktemp("cache")


def _ask(engine, doc: Document, name: str, budget: Budget | None = None, **options):
    ctx = RunContext(engine=engine, budget=budget or Budget(max_new_tokens=48))
    return run_recipe(get_recipe(name, **options), ctx, [doc], QUESTION)


def _check(answer, doc: Document) -> None:
    assert "4817" in answer.text, (answer.text, answer.notes)
    assert not answer.partial
    assert answer.citations, "the answer must cite its source"
    assert any("4817" in c.quote for c in answer.citations)
    assert not verify_citations(answer.citations, [doc])
    for c in answer.citations:
        assert doc.text[c.start : c.end] == c.quote
    assert_grounded(answer, QUESTION)
    evidence = [s.detail["spans"] for s in answer.trace.steps if s.name == "evidence"][-1]
    assert any(start <= doc.text.index(NEEDLE) < end for _, start, end in evidence), "the needle was in front of the model"


def test_document_is_several_windows_long(engine_1k, needle_doc):
    assert engine_1k.count_tokens(needle_doc.text) >= 3.5 * WINDOW


def test_map_reduce(engine_1k, needle_doc):
    answer = _ask(engine_1k, needle_doc, "map_reduce")
    _check(answer, needle_doc)
    assert answer.usage.engine_calls == 2


def test_recurrent(engine_1k, needle_doc):
    answer = _ask(engine_1k, needle_doc, "recurrent")
    _check(answer, needle_doc)
    chunks = answer.trace.steps[0].detail["chunks"]
    assert any(s.name == "stop" for s in answer.trace.steps), "should stop once the answer is confirmed"
    assert sum(s.name == "read" for s in answer.trace.steps) < chunks


def test_memory_tree_navigate_then_collapsed_reuse_the_cached_tree(engine_1k, needle_doc, tree_cache, monkeypatch):
    monkeypatch.setenv("CTXAGENT_CACHE", str(tree_cache))
    navigate = _ask(engine_1k, needle_doc, "memory_tree")
    _check(navigate, needle_doc)
    collapsed = _ask(engine_1k, needle_doc, "memory_tree", mode="collapsed", retriever="bm25")
    _check(collapsed, needle_doc)
    built = [s.detail["cached"] for a in (navigate, collapsed) for s in a.trace.steps if s.name == "tree"]
    assert built == [False, True]
    assert collapsed.usage.engine_calls == 2


def test_retrieve_then_reason(engine_1k, needle_doc):
    answer = _ask(engine_1k, needle_doc, "retrieve_then_reason", retriever="bm25")
    _check(answer, needle_doc)
    assert answer.usage.engine_calls == 2


def test_agentic(engine_1k, needle_doc):
    answer = _ask(engine_1k, needle_doc, "agentic")
    _check(answer, needle_doc)
    assert any(s.name == "agent:action" for s in answer.trace.steps)


def test_auto_uses_the_cached_tree(engine_1k, needle_doc, tree_cache, monkeypatch):
    monkeypatch.setenv("CTXAGENT_CACHE", str(tree_cache))
    answer = _ask(engine_1k, needle_doc, "auto")
    _check(answer, needle_doc)
    assert answer.recipe == "auto:memory_tree" and "cached" in answer.trace.steps[0].detail["why"]


def test_budget_exhaustion_gives_a_partial_answer_with_the_real_model(engine_1k, needle_doc):
    # Evidence is scored, not copied, so a chunk with nothing above the floor costs no call: one call
    # is spent on the first promising chunk, and the next call is refused, either a later chunk's
    # scoring (the note says how far reading got) or the answer step (the best quote found so far).
    answer = _ask(engine_1k, needle_doc, "recurrent", Budget(max_calls=1, max_new_tokens=48))
    assert answer.partial and answer.usage.engine_calls == 1
    assert re.search(r"engine calls limit 1 reached.*(read \d+ of \d+ chunks|before the answer step)", answer.notes[0])
    assert not verify_citations(answer.citations, [needle_doc])
    assert_grounded(answer, QUESTION)
