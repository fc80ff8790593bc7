"""Chunks keep exact offsets into the source and respect the token limit of the real tokenizer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ctxagent.chunking import chunk_document, prefix_within, sentence_spans
from ctxagent.types import Chunk, Document

REPORT = Path(__file__).resolve().parent.parent / "examples" / "data" / "report.md"


@pytest.fixture(scope="module")
def long_doc() -> Document:
    text = REPORT.read_text()
    # Repeat with variations so paragraphs, lists and headings all appear many times.
    return Document(id="r", text="\n\n".join(f"Part {i}.\n\n{text}" for i in range(6)))


@pytest.mark.parametrize("max_tokens,overlap", [(16, 0), (64, 1), (256, 2)])
def test_chunks_round_trip_and_fit(engine, long_doc, max_tokens, overlap):
    chunks = chunk_document(long_doc, engine.count_tokens, max_tokens=max_tokens, overlap_sentences=overlap)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert long_doc.text[c.start : c.end] == c.text
        assert c.n_tokens == engine.count_tokens(c.text) <= max_tokens
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    lost = [i for i, ch in enumerate(long_doc.text) if not ch.isspace() and i not in covered]
    assert not lost, f"text not in any chunk at {lost[:5]}"


def test_chunks_prefer_sentence_bounds(engine, long_doc):
    chunks = chunk_document(long_doc, engine.count_tokens, max_tokens=128)
    ends = {s.end for s in sentence_spans(long_doc.text)}
    assert all(c.end in ends for c in chunks)


def test_a_giant_word_is_split_not_dropped(engine):
    doc = Document(id="w", text="Start. " + "x" * 5000 + " end.")
    chunks = chunk_document(doc, engine.count_tokens, max_tokens=50)
    assert "".join(c.text for c in chunks if c.text.startswith("x") or "x" in c.text).count("x") == 5000
    assert all(c.n_tokens <= 50 for c in chunks)


def test_chunk_rejects_a_span_that_does_not_match_its_text():
    with pytest.raises(ValueError, match="span"):
        Chunk(doc_id="d", index=0, start=0, end=5, text="abc")


def test_prefix_of_ten_million_characters_is_cheap(engine):
    text = "The harbour was quiet that morning. " * 280_000  # ~10M characters
    began = time.perf_counter()
    cut = prefix_within(text, engine.count_tokens, 1000)
    assert time.perf_counter() - began < 5
    assert engine.count_tokens(text[:cut]) <= 1000 < engine.count_tokens(text[: cut + 200])


def test_sentences_are_not_cut_at_initials_or_titles_in_real_text():
    # Wikipedia prose (the bundled SQuAD articles): "Franklin D. Roosevelt", "the U.S. National
    # Science Foundation" and "Rev. Elie Prioleau" are inside one sentence each, since evidence
    # is quoted by sentence and half a sentence can say something the whole does not.
    import re

    from ctxagent.evaluation.squad import squad_articles

    text = "\n\n".join(a.text for a in squad_articles())
    sentences = [text[s.start : s.end] for s in sentence_spans(text)]
    for phrase in ("Franklin D. Roosevelt", "U.S. National Science Foundation", "Rev. Elie Prioleau"):
        assert any(phrase in s for s in sentences), phrase
    cut = [s for s in sentences if re.search(r"(?:^|\s)(?:[A-Z]|Mr|Mrs|Dr|Rev|Gen|Prof)\.$", s)]
    # a sentence may truly end in a capital ("vitamin D."), rare; cutting at every initial gave 171 more sentences here
    assert len(cut) <= len(sentences) // 1000, cut[:5]


def test_a_closing_quote_stays_with_its_sentence():
    text = 'He asked, "Is it true?" She said "No." (It was not.) Then he left.'
    assert [text[s.start : s.end] for s in sentence_spans(text)] == ['He asked, "Is it true?"', 'She said "No."', "(It was not.)", "Then he left."]
