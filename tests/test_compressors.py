"""Prompt compressors with the real embedded model: the needle survives, spans map back, bad input fails clearly."""

from __future__ import annotations

import pydoc_data.topics

import pytest

from ctxagent.chunking import chunk_document
from ctxagent.citations import verify_citations
from ctxagent.compressors import Compressed, KeptSpan, get_compressor, registry
from ctxagent.errors import InputError
from ctxagent.recipes import get_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import Budget, Chunk, Document

NEEDLE = "The secret code for the blue vault is 4821."
QUESTION = "What is the secret code for the blue vault?"


def haystack(chars: int) -> str:
    """Real English text that ships with Python (the interpreter's own help topics)."""
    text = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
    return text[20_000 : 20_000 + chars]


def needle_document(chars: int = 2800) -> Document:
    text = haystack(chars)
    cut = text.find("\n\n", len(text) // 2)
    return Document(id="help", text=text[:cut] + "\n\n" + NEEDLE + text[cut:])


def assert_spans_map_back(result: Compressed, documents: list[Document]) -> None:
    by_id = {d.id: d for d in documents}
    assert result.spans, "a compressed text keeps at least one span"
    for span in result.spans:
        assert by_id[span.doc_id].text[span.start : span.end] == result.text[span.offset : span.offset + span.length]
    # Everything in the compressed text is either a kept span or a separator we inserted.
    covered = sum(s.length for s in result.spans)
    assert covered >= 0.8 * len(result.text)


@pytest.fixture(scope="module")
def doc() -> Document:
    return needle_document()


@pytest.fixture(scope="module")
def chunks(doc, engine_2k) -> list[Chunk]:
    return chunk_document(doc, engine_2k.count_tokens, max_tokens=128)


@pytest.fixture(scope="module", params=["embedding", "contrastive"])
def perplexity_4x(request, chunks, engine_2k) -> Compressed:
    """Both ways of ranking sentences: the encoder (one model pass) and LongLLMLingua's second pass."""
    return get_compressor("perplexity", scorer=engine_2k, sentences=request.param).compress(chunks, QUESTION, ratio=0.25)


def test_registry_lists_the_built_in_compressors():
    assert {"perplexity", "self_information", "embedding"} <= set(registry.names())


def test_perplexity_keeps_the_needle_at_4x(perplexity_4x, doc, chunks):
    result = perplexity_4x
    assert result.original_tokens > 500
    # The encoder set chunks aside before the model read any (the default prefilter).
    assert 0 < result.details["chunks_after_prefilter"] < len(chunks)
    assert 0.15 <= result.ratio <= 0.25, result.ratio
    assert result.factor >= 4
    # The answer and what ties it to the question survive; low-information words may go.
    assert "4821" in result.text
    at = result.text.index("4821")
    kept = result.text[max(0, at - 60) : at]
    assert all(word in kept for word in ("secret", "code", "vault")), kept
    assert_spans_map_back(result, [doc])


def test_a_quote_from_the_compressed_text_maps_to_the_source(perplexity_4x, doc):
    at = perplexity_4x.text.index("4821")
    sentence_start = perplexity_4x.text.rfind("secret", 0, at)
    citations = perplexity_4x.citations_for(sentence_start, at + 4, [doc])
    assert citations and not verify_citations(citations, [doc])
    # Merged across dropped words: one quote of the original sentence, as it stands in the source.
    assert citations[0].quote.startswith("secret") and citations[0].quote.endswith("4821")
    assert citations[0].quote in NEEDLE


def test_embedding_keeps_the_whole_needle_sentence_at_4x(chunks, doc, engine_2k):
    result = get_compressor("embedding", scorer=engine_2k).compress(chunks, QUESTION, ratio=0.25)
    assert NEEDLE in result.text
    assert result.compressed_tokens <= 0.25 * result.original_tokens
    assert_spans_map_back(result, [doc])


def test_self_information_meets_its_ratio_and_maps_back(engine_2k):
    doc = Document(id="short", text=haystack(1200))
    small = chunk_document(doc, engine_2k.count_tokens, max_tokens=128)
    result = get_compressor("self_information", scorer=engine_2k).compress(small, QUESTION, ratio=0.5)
    assert 0.3 <= result.ratio <= 0.5
    assert_spans_map_back(result, [doc])


def test_budget_counts_the_question_and_is_met(chunks, engine_2k):
    question_tokens = engine_2k.count_tokens(QUESTION)
    result = get_compressor("embedding", scorer=engine_2k).compress(chunks, QUESTION, budget=question_tokens + 120)
    assert 0 < result.compressed_tokens <= 120


def test_compress_then_answer_cites_the_original_document(doc, engine_2k):
    recipe = get_recipe("compress_then_answer", compressor="embedding", ratio=0.25)
    ctx = RunContext(engine=engine_2k, budget=Budget(max_new_tokens=24))
    answer = recipe.run(ctx, [doc], QUESTION)
    assert "4821" in answer.text
    assert answer.citations and not verify_citations(answer.citations, [doc])
    assert any("4821" in c.quote for c in answer.citations)
    step = next(s for s in answer.trace.steps if s.name == "compress")
    assert step.detail["compressed_tokens"] <= 0.25 * step.detail["original_tokens"]
    assert answer.recipe == "compress_then_answer"


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5])
def test_ratio_outside_zero_one_is_rejected(chunks, engine_2k, ratio):
    with pytest.raises(InputError, match=r"ratio must be in \(0, 1\]"):
        get_compressor("perplexity", scorer=engine_2k).compress(chunks, QUESTION, ratio=ratio)


def test_budget_smaller_than_the_question_is_rejected(chunks, engine_2k):
    with pytest.raises(InputError, match="smaller than the question"):
        get_compressor("perplexity", scorer=engine_2k).compress(chunks, QUESTION, budget=3)


@pytest.mark.parametrize("option", [{"sentences": "tfidf"}, {"prefilter": "bm25"}, {"prefilter_margin": 0.5}, {"iterations": 0}])
def test_unknown_perplexity_options_are_rejected(option):
    with pytest.raises(InputError):
        get_compressor("perplexity", **option)


@pytest.mark.parametrize("name", ["perplexity", "self_information", "embedding"])
def test_empty_document_and_question_are_rejected(name, engine_2k):
    compressor = get_compressor(name, scorer=engine_2k)
    with pytest.raises(InputError, match="document is empty"):
        compressor.compress([], QUESTION, ratio=0.5)
    blank = [Chunk(doc_id="d", index=0, start=0, end=3, text="   ")]
    with pytest.raises(InputError, match="document is empty"):
        compressor.compress(blank, QUESTION, ratio=0.5)
    with pytest.raises(InputError, match="question is empty"):
        compressor.compress([Chunk(doc_id="d", index=0, start=0, end=5, text="Hello")], "  ", ratio=0.5)


def test_no_target_is_an_error(chunks, engine_2k):
    with pytest.raises(InputError, match="budget or a target ratio"):
        get_compressor("embedding", scorer=engine_2k).compress(chunks, QUESTION)


def test_to_source_splits_and_merges_across_kept_spans():
    source = "Alpha beta gamma. Delta epsilon."
    text = "Alpha gamma. epsilon."
    spans = [
        KeptSpan(doc_id="d", start=0, end=5, offset=0),  # "Alpha"
        KeptSpan(doc_id="d", start=11, end=17, offset=6),  # "gamma."
        KeptSpan(doc_id="d", start=24, end=32, offset=13),  # "epsilon."
    ]
    result = Compressed(text=text, method="t", question="q", ratio=0.6, original_tokens=5, compressed_tokens=3, spans=spans)
    pieces = result.to_source(0, len(text))
    assert [source[p.start : p.end] for p in pieces] == ["Alpha", "gamma.", "epsilon."]
    merged = result.to_source(2, 9, merge_gap=20)
    assert len(merged) == 1 and source[merged[0].start : merged[0].end] == "pha beta gam"


def test_batched_scores_match_one_at_a_time(engine_2k):
    texts = ["The vault code is 4821.", "A longer line of text, so that rows differ in length. " * 3, "x"]
    contexts = ["Question: what is the code?", "", "abc"]
    together = engine_2k.score(texts, contexts)
    for text, context, batched in zip(texts, contexts, together):
        [alone] = engine_2k.score([text], [context])
        assert batched.offsets == alone.offsets
        assert max(abs(a - b) for a, b in zip(batched.logprobs, alone.logprobs)) < 1e-3
