"""Control flow of the long-document recipes, with a scripted engine: batching, early
stopping, tree caching, budgets and partial answers, the auto planner's choices, and
quote verification. Whether the recipes answer correctly is tested with the real model
in test_recipes_e2e.py; these tests only check what the recipes do with the replies."""

from __future__ import annotations

import pytest

from ctxagent.citations import verify_citations
from ctxagent.errors import InputError
from ctxagent.recipes import get_recipe
from ctxagent.recipes.base import run_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.reading import NOT_FOUND, is_none
from ctxagent.types import Budget, Document
from tests.fakes import ScriptedEngine

NEEDLE = "The secret code to open the blue vault is 4817."
QUESTION = "What is the secret code to open the blue vault?"
FILLER = "The harbour was quiet that morning and the boats rocked gently at their moorings. "


def _document(depth: float = 0.6, sentences: int = 600) -> Document:
    parts = [FILLER] * sentences
    parts.insert(int(sentences * depth), NEEDLE + " ")
    return Document(id="doc", text="".join(parts))


def _reply(prompt: str) -> str:
    """A model that copies the needle when it sees it and answers from facts."""
    if prompt.startswith("Facts:") or "\nFacts:" in prompt:
        return "The code is 4817." if "4817" in prompt else "NONE"
    if "Reply with the section number" in prompt or "Reply with the number of the step" in prompt:
        return "1"
    if "Summarize" in prompt:
        return "A quiet harbour." + (" A vault code 4817." if "4817" in prompt else "")
    if "search keywords" in prompt:
        return "secret code blue vault"
    return NEEDLE if NEEDLE in prompt else "NONE"


def _run(name: str, doc: Document, budget: Budget | None = None, **options):
    engine = ScriptedEngine(_reply, context_window=512)
    ctx = RunContext(engine=engine, budget=budget or Budget(max_new_tokens=32))
    return run_recipe(get_recipe(name, **options), ctx, [doc], QUESTION), engine


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXAGENT_CACHE", str(tmp_path / "cache"))


def test_map_reduce_scores_every_sentence_then_makes_one_model_call_and_one_answer():
    doc = _document()
    answer, engine = _run("map_reduce", doc)
    assert "4817" in answer.text and not answer.partial
    assert answer.usage.engine_calls == 2  # one batched scoring call + reduce
    chunked = next(s for s in answer.trace.steps if s.name == "chunk")
    mapped = next(s for s in answer.trace.steps if s.name == "map")
    assert chunked.detail["chunks"] > 5 and mapped.detail["sentences"] == 601  # every sentence of every chunk
    assert [s.name for s in answer.trace.steps if s.name in ("map:model", "answer")] == ["map:model", "answer"]
    assert len(engine.calls) == 1  # the model wrote only the answer; the evidence was selected by scores
    assert answer.citations[0].quote == NEEDLE and not verify_citations(answer.citations, [doc])


@pytest.mark.slow  # the real sentence encoder scores a long document: many seconds on two cores
def test_recurrent_stops_early_once_the_answer_is_confirmed():
    early, _ = _run("recurrent", _document(depth=0.1))
    late, _ = _run("recurrent", _document(depth=0.9))
    assert "4817" in early.text and "4817" in late.text
    stops = [next(s for s in a.trace.steps if s.name == "stop").detail for a in (early, late)]
    assert stops[0]["read"] < stops[1]["read"] < stops[1]["total"]
    # Chunks with no candidate above the floor cost no engine call.
    assert early.usage.engine_calls == late.usage.engine_calls == 2


def test_memory_tree_is_built_once_and_reused():
    doc = _document()
    first, _ = _run("memory_tree", doc)
    second, _ = _run("memory_tree", doc)
    assert "4817" in first.text and "4817" in second.text
    tree_steps = [s for s in first.trace.steps if s.name == "tree"] + [s for s in second.trace.steps if s.name == "tree"]
    assert [s.detail["cached"] for s in tree_steps] == [False, True]
    assert second.usage.engine_calls < first.usage.engine_calls


def test_memory_tree_backtracks_when_the_chosen_branch_is_empty():
    # A decoy early on matches the question as well as the needle near the end; the scripted
    # model picks section 1 (the decoy's branch), reads nothing there, and must come back.
    decoy = "The secret code to open the blue vault was changed last winter. "
    doc = _document(depth=0.95)
    doc = Document(id="doc", text=FILLER * 10 + decoy + doc.text)
    answer, _ = _run("memory_tree", doc)
    assert "4817" in answer.text
    assert any(s.name == "navigate:backtrack" for s in answer.trace.steps)


def test_memory_tree_key_sentences_lead_navigation_to_the_needle():
    answer, _ = _run("memory_tree", _document(depth=0.95))
    assert "4817" in answer.text
    reads = [s for s in answer.trace.steps if s.name == "navigate:read"]
    assert len(reads) == 1, "the key sentences should point straight at the needle's leaf"


def test_not_found_is_said_plainly():
    doc = Document(id="doc", text=FILLER * 300)
    answer, _ = _run("map_reduce", doc)
    assert answer.text == NOT_FOUND and not answer.citations and not answer.partial
    assert answer.basis == "none"


def test_an_answer_without_text_rests_on_nothing_whatever_its_recipe_says():
    """Answer.basis: NOT FOUND and an empty answer are `none` even where a recipe claims more;
    a user's recipe that says nothing leaves it unset; an unknown basis is refused."""
    from pydantic import ValidationError

    from ctxagent.types import Answer

    assert Answer(text=NOT_FOUND, basis="stated").basis == "none"
    assert Answer(text="  ", basis="option").basis == "none"
    assert Answer(text="Yes").basis is None
    assert Answer(text="Yes", basis="option").basis == "option"
    with pytest.raises(ValidationError):
        Answer(text="Yes", basis="likely")


@pytest.mark.parametrize("name", ["map_reduce", "recurrent", "memory_tree"])
def test_a_call_budget_gives_a_partial_answer(name):
    answer, _ = _run(name, _document(depth=0.9), Budget(max_calls=1, max_new_tokens=32))
    assert answer.partial
    assert answer.usage.engine_calls <= 1
    assert any("budget" in n or "engine call" in n for n in answer.notes)


@pytest.mark.slow  # the real sentence encoder scores a long document: many seconds on two cores
def test_map_reduce_under_a_token_budget_stays_within_it():
    doc = _document(depth=0.05)
    # Selecting evidence spends engine tokens only on the few candidates the model re-ranks,
    # so a modest budget covers the whole document and the answer.
    answer, _ = _run("map_reduce", doc, Budget(max_tokens=2500, max_new_tokens=32))
    assert not answer.partial and "4817" in answer.text and answer.usage.total_tokens <= 2500
    tight, _ = _run("map_reduce", doc, Budget(max_tokens=40, max_new_tokens=32))
    assert tight.partial and tight.usage.total_tokens <= 40
    assert any("budget" in n for n in tight.notes)


@pytest.mark.slow  # the real sentence encoder scores a long document: many seconds on two cores
def test_recurrent_partial_answer_keeps_what_it_verified():
    # Enough calls to find the needle early, not enough to answer: the quote is the answer.
    answer, _ = _run("recurrent", _document(depth=0.0), Budget(max_calls=1, max_new_tokens=32))
    assert answer.partial and answer.text == NEEDLE and answer.citations[0].quote == NEEDLE



@pytest.mark.slow  # the real sentence encoder scores a long document: many seconds on two cores
def test_a_budget_spent_mid_reading_still_gives_a_choice_question_its_option():
    """Issue 25's rule holds when the budget runs out mid-way through the document, not only
    before the answer step: the needle is read with the one engine call, the budget runs out
    on a later chunk that needs another, and the facts found so far choose the option (with
    no call left: the claim rule, or the evidence's words), flagged partial. An open question
    keeps the quote (test above)."""
    parts = [FILLER] * 600
    parts.insert(0, NEEDLE + " ")
    parts.insert(300, "The blue vault was painted again by the harbour guards in the spring. ")
    doc = Document(id="doc", text="".join(parts))
    for question, expected, basis in [
        ("Is the secret code to open the blue vault 4817?", "Yes", "stated"),
        ("What is the secret code to open the blue vault? A) 5521 B) 4817", "B", "option"),
    ]:
        ctx = RunContext(engine=ScriptedEngine(_reply, context_window=512), budget=Budget(max_calls=1, max_new_tokens=32))
        answer = run_recipe(get_recipe("recurrent"), ctx, [doc], question)
        stop = next(s for s in answer.trace.steps if s.name == "budget_exhausted").detail
        assert 0 < stop["read"] < stop["total"], stop  # stopped mid-way, the needle read
        assert answer.partial and answer.basis == basis and answer.text.startswith(expected), (question, answer.text, answer.basis)
        assert answer.citations[0].quote == NEEDLE and any(f"read {stop['read']} of" in n for n in answer.notes)

def test_auto_picks_by_length_and_budget():
    engine = ScriptedEngine(_reply, context_window=512)
    auto = get_recipe("auto")
    short = Document(id="s", text="The vault code is 7319.")
    assert auto.choose(RunContext(engine=engine), [short], QUESTION)[0] == "direct"
    long = _document()
    name, _, why = auto.choose(RunContext(engine=engine), [long], QUESTION)
    assert name == "map_reduce" and "window" in why
    pytest.importorskip("ctxagent.retrievers.bm25", reason="retrievers not installed")
    name, _, why = auto.choose(RunContext(engine=engine, budget=Budget(max_tokens=4000)), [long], QUESTION)
    assert name == "retrieve_then_reason" and "max_tokens" in why


def test_auto_records_its_choice_in_the_trace():
    answer, _ = _run("auto", _document())
    plan = answer.trace.steps[0]
    assert plan.name == "plan" and plan.detail["recipe"] == "map_reduce" and plan.detail["why"]
    assert answer.recipe == "auto:map_reduce" and "4817" in answer.text


def test_none_replies_are_recognised():
    for reply in ["NONE", "None.", "The code is not given in the text.", "The text does not mention it.", ""]:
        assert is_none(reply), reply
    assert not is_none(NEEDLE)


def test_bad_options_are_rejected_clearly():
    with pytest.raises(InputError, match="mode"):
        get_recipe("memory_tree", mode="sideways")
    with pytest.raises(InputError, match="k >= 1"):
        get_recipe("retrieve_then_reason", k=0)


def test_agentic_refuses_to_answer_before_any_fact_is_verified():
    pytest.importorskip("ctxagent.retrievers.bm25", reason="retrievers not installed")

    def eager(prompt: str) -> str:  # always picks the "answer" step, wherever it is in the menu
        if "Reply with the number of the step" in prompt:
            menu = [line for line in prompt.splitlines() if line[:1].isdigit() and ". " in line]
            return next(line.split(".")[0] for line in menu if "answer:" in line)
        return _reply(prompt)

    doc = _document()
    ctx = RunContext(engine=ScriptedEngine(eager, context_window=512), budget=Budget(max_new_tokens=32))
    answer = run_recipe(get_recipe("agentic", retriever="bm25"), ctx, [doc], QUESTION)
    assert "4817" in answer.text and not verify_citations(answer.citations, [doc])
    whys = [s.detail["why"] for s in answer.trace.steps if s.name == "agent:action"]
    assert any("refused to answer" in w for w in whys)
    assert whys[-1] == "model's choice"  # once a fact is verified, answering is allowed


def test_an_unknown_recipe_option_is_named_with_the_valid_ones():
    from ctxagent.errors import InputError
    from ctxagent.recipes import get_recipe

    with pytest.raises(InputError, match=r"recipe 'retrieve_then_reason' has no option 'top_k'; its options are retriever, k, chunk_tokens"):
        get_recipe("retrieve_then_reason", top_k=3)
    with pytest.raises(InputError, match="'auto' has no option 'k'; it takes no options"):
        get_recipe("auto", k=3)
    assert get_recipe("retrieve_then_reason", k=3).k == 3


def test_evidence_scan_names_the_map_reduce_recipe():
    from ctxagent.recipes import get_recipe, registry

    assert type(get_recipe("evidence_scan")) is type(get_recipe("map_reduce"))
    assert "evidence_scan" not in registry.names() and registry.aliases() == {"evidence_scan": "map_reduce"}
