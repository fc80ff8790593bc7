"""Evidence selection by scores (recipes/evidence.py): how the readers are combined, the
floor, widening to a neighbour, the engine's vote, and following chains (hops).

The lexical (bm25s) and dense (all-MiniLM-L6-v2) readers are the real ones; the engine is
scripted only to control its log-probs, so these tests check the combination and the
control flow. That the recipes put the right sentences before the answer step with the
real model is tested at the end (marked slow)."""

from __future__ import annotations

from typing import Sequence

import pytest

from ctxagent.engines.base import TokenScores
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.evidence import EvidenceSelector, bridge_terms, follow_chain
from ctxagent.recipes.reading import Facts
from ctxagent.types import Budget, Chunk, Document
from tests.fakes import ScriptedEngine

FILLER = [
    "The harbour was quiet that morning and the boats rocked gently at their moorings.",
    "Rain had fallen in the night and the lanes were still wet.",
    "A cart passed the church on its way to the market.",
    "The baker opened his shop a little later than usual.",
]
LITERAL = "The secret code to open the blue vault is 4817."
PARAPHRASED = "The groundskeeper concealed a silver locket beneath the ancient elm."
HOP_A = "The stolen emerald was hidden in the cottage of Captain Thornbury."
HOP_B = "Captain Thornbury lives in the village of Wrexley."


def _doc(*needles: str, repeat: int = 6) -> tuple[Document, list[Chunk]]:
    """Filler paragraphs with the needles spread through them, cut into one chunk per paragraph."""
    paragraphs = [" ".join(FILLER) for _ in range(repeat)]
    for i, needle in enumerate(needles):
        paragraphs.insert(1 + i * 3, needle)
    text = "\n\n".join(paragraphs)
    chunks, at = [], 0
    for i, p in enumerate(paragraphs):
        start = text.index(p, at)
        chunks.append(Chunk(doc_id="doc", index=i, start=start, end=start + len(p), text=p))
        at = start + len(p)
    return Document(id="doc", text=text), chunks


class VotingEngine(ScriptedEngine):
    """Scripted engine whose log-probs favour reading the question after `favourite`."""

    def __init__(self, favourite: str) -> None:
        super().__init__()
        self.favourite = favourite

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        contexts = contexts or [""] * len(texts)
        return [TokenScores(text=t, offsets=[(0, len(t))], logprobs=[-0.2 if self.favourite in c else -2.0]) for t, c in zip(texts, contexts)]


def _ctx(engine=None, **budget) -> RunContext:
    return RunContext(engine=engine or ScriptedEngine(), budget=Budget(**budget))


def test_lexical_and_dense_readers_find_a_literal_and_a_paraphrased_sentence():
    doc, chunks = _doc(LITERAL, PARAPHRASED)
    selector = EvidenceSelector(model_weight=0)
    pool = selector.pool(chunks)
    literal = selector.select(_ctx(), pool, [doc], "What is the secret code to open the blue vault?")
    assert literal[0].text == LITERAL and doc.text[literal[0].citation.start : literal[0].citation.end] == LITERAL
    # No content word shared with the sentence: the dense reader carries it.
    ctx = _ctx()
    paraphrased = selector.select(ctx, pool, [doc], "What did the gardener hide under the old tree?")
    assert paraphrased and paraphrased[0].text == PARAPHRASED
    [step] = [s for s in ctx.trace.steps if s.name == "select"]
    assert step.detail["readers"][0][0] < 0.35 < step.detail["readers"][0][1]  # low lexical, high dense


def test_a_document_that_does_not_answer_yields_no_facts():
    doc, chunks = _doc()
    selector = EvidenceSelector()
    engine = ScriptedEngine()
    facts = selector.select(_ctx(engine), selector.pool(chunks), [doc], "What is the secret code to open the blue vault?")
    assert facts == []


def test_a_sentence_that_leans_on_the_one_before_is_widened_to_include_it():
    text = "Thomas Harlow bought the old mill in spring. He paid 900 pounds for it.\n\nHe was glad of it."
    doc = Document(id="doc", text=text)
    chunk = Chunk(doc_id="doc", index=0, start=0, end=len(text), text=text)
    selector = EvidenceSelector(model_weight=0, keep=1)
    [fact] = selector.select(_ctx(), selector.pool([chunk]), [doc], "How many pounds were paid?")
    assert fact.text == "Thomas Harlow bought the old mill in spring. He paid 900 pounds for it."
    # Never across a paragraph break.
    assert selector.pool([chunk]).span(2) == (text.index("He was glad"), len(text))


def test_the_engine_vote_reorders_close_candidates_in_one_batched_call():
    first = "The blue vault code was changed to 4817 in May."
    second = "The blue vault code was changed to 9321 in June."
    doc, chunks = _doc(first, second)
    question = "What was the blue vault code changed to?"
    for favourite in (first, second):
        ctx = _ctx(VotingEngine(favourite))
        facts = EvidenceSelector(model_weight=0.5).select(ctx, EvidenceSelector().pool(chunks), [doc], question)
        assert facts[0].text == favourite
        assert ctx.usage.engine_calls == 1 and [s.name for s in ctx.trace.steps] == ["select:model", "select"]
    # No model call when the weight is zero.
    ctx = _ctx(VotingEngine(first))
    EvidenceSelector(model_weight=0).select(ctx, EvidenceSelector().pool(chunks), [doc], question)
    assert ctx.usage.engine_calls == 0


def test_bridge_terms_name_what_the_fact_brings_in_unless_another_fact_connects_it():
    doc, chunks = _doc(HOP_A, HOP_B)
    selector = EvidenceSelector(model_weight=0)
    pool = selector.pool(chunks)
    question = "In which village was the stolen emerald hidden?"
    [a] = selector.select(_ctx(), pool, [doc], question, keep=1)
    assert a.text == HOP_A
    terms = bridge_terms(a, question, [a], pool)
    assert terms[:2] == ["captain", "thornbury"] or terms[:2] == ["thornbury", "captain"]
    assert "emerald" not in terms  # already in the question
    [b] = selector.select(_ctx(), pool, [doc], "Captain Thornbury lives", keep=1)
    assert bridge_terms(a, question, [a, b], pool) == ["cottage"]  # the name is connected now


def test_follow_chain_adds_the_second_hop_next_to_its_parent_and_records_it():
    doc, chunks = _doc(HOP_B, HOP_A)  # the link comes before the fact that needs it
    selector = EvidenceSelector(model_weight=0, keep=1)
    pool = selector.pool(chunks)
    question = "In which village was the stolen emerald hidden?"
    ctx = _ctx(max_hops=2)
    facts = Facts()
    facts.add(selector.select(ctx, pool, [doc], question))
    assert [f.text for f in facts.best()] == [HOP_A]
    hops = follow_chain(ctx, selector, pool, [doc], question, facts, max_hops=ctx.budget.max_hops)
    assert [f.text for f in facts.best(2)] == [HOP_A, HOP_B]
    assert hops[0].added[0].text == HOP_B and "thornbury" in hops[0].query
    assert any(s.name == "hop" and s.detail.get("found") for s in ctx.trace.steps)
    assert len(hops) <= 2


def test_no_hop_when_the_budget_allows_none_or_no_chain_is_open():
    doc, chunks = _doc(HOP_A, HOP_B)
    selector = EvidenceSelector(model_weight=0, keep=1)
    pool = selector.pool(chunks)
    question = "In which village was the stolen emerald hidden?"
    facts = Facts()
    facts.add(selector.select(_ctx(), pool, [doc], question))
    assert follow_chain(_ctx(), selector, pool, [doc], question, facts, max_hops=0) == [] and len(facts) == 1
    literal = Facts()
    ctx = _ctx()
    literal.add(selector.select(ctx, pool, [doc], "What is the secret code?"))
    assert follow_chain(ctx, selector, pool, [doc], "What is the secret code?", literal, max_hops=2) == []


def test_budget_max_hops_defaults_to_two_and_rejects_negatives():
    assert Budget().max_hops == 2 and Budget(max_hops=0).max_hops == 0
    with pytest.raises(ValueError):
        Budget(max_hops=-1)


# -- end to end, real model and retrievers ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["retrieve_then_reason", "map_reduce"])
def test_two_hop_and_paraphrased_needles_reach_the_answer_step(recipe):
    """A two-hop pair (link first) and a paraphrased needle in ~3000 tokens of Persuasion:
    every one of them is among the facts offered to the answer step."""
    from ctxagent.engines import get_engine
    from ctxagent.evaluation.haystack import haystack_text
    from ctxagent.recipes import get_recipe
    from ctxagent.recipes.base import run_recipe

    engine = get_engine("hf", context_window=1024)
    paragraphs, tokens = [], 0
    for p in haystack_text("persuasion").split("\n\n")[20:]:
        paragraphs.append(p)
        tokens += engine.count_tokens(p) + 1
        if tokens > 3000:
            break
    paragraphs.insert(int(0.2 * len(paragraphs)), HOP_B)
    paragraphs.insert(int(0.5 * len(paragraphs)), PARAPHRASED)
    paragraphs.insert(int(0.8 * len(paragraphs)), HOP_A)
    doc = Document(id="persuasion", text="\n\n".join(paragraphs))
    cases = {"In which village was the stolen emerald hidden?": [HOP_A, HOP_B], "What did the gardener hide under the old tree?": [PARAPHRASED]}
    for question, gold in cases.items():
        ctx = RunContext(engine=engine, budget=Budget(max_new_tokens=32))
        answer = run_recipe(get_recipe(recipe), ctx, [doc], question)
        [offered] = [s.detail["spans"] for s in answer.trace.steps if s.name == "evidence"][-1:]
        quotes = [doc.text[start:end] for _, start, end in offered]
        for sentence in gold:
            assert any(sentence in q for q in quotes), (question, quotes)
