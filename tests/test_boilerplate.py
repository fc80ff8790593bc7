"""Evidence is content: page furniture of real saved Wikipedia pages is recognised and not chosen."""

from __future__ import annotations

import gzip

import pytest

from ctxagent.agent import ContextAgent
from ctxagent.boilerplate import boilerplate_spans, in_spans, is_boilerplate
from ctxagent.chunking import chunk_document
from ctxagent.loaders import document_from_text, load_document
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.evidence import EvidenceSelector
from ctxagent.types import Budget

FURNITURE = ("Jump up", "Retrieved", "[edit]", "Creative Commons", "Navigation menu", "Privacy policy", "Main page", "Donate to Wikipedia", "Categories")


@pytest.fixture(scope="module")
def wiki_html(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("wiki") / "Mozilla.html"
    path.write_bytes(gzip.decompress((data_dir / "wikipedia" / "mozilla.html.gz").read_bytes()))
    return path


@pytest.fixture(scope="module")
def wiki_text(data_dir):
    return load_document(data_dir / "wikipedia" / "bleve.txt")


def test_a_saved_wikipedia_html_page_loads_as_its_content_without_the_furniture(wiki_html):
    raw = wiki_html.read_text(encoding="utf-8")
    assert all(word in raw for word in ("Retrieved", "Creative Commons", "Navigation menu", "mw-editsection", "cite_note"))  # the page has them
    text = load_document(wiki_html).text
    for word in FURNITURE:
        assert word not in text, word
    assert "Mozilla is a free-software community, created in 1998 by members of Netscape." in text
    assert "Firefox" in text and "Founded" in text  # prose and infobox stay


def test_furniture_lines_of_a_saved_wikipedia_text_page_are_recognised(wiki_text):
    text = wiki_text.text
    spans = boilerplate_spans(text)

    def marked(piece: str) -> bool:
        at = text.index(piece)
        return in_spans(at, at + len(piece), spans)

    furniture_lines = [line for line in text.splitlines() if "Jump up" in line or "[edit]" in line or "Retrieved" in line]
    assert len(furniture_lines) >= 15
    for line in furniture_lines:
        assert marked(line), line
    for piece in ("1.1 Water example", "From Wikipedia, the free encyclopedia", "Expansion ratio\n", "BLEVE Demo on YouTube", "Categories: Explosives"):
        assert marked(piece), piece
    content = [
        "A boiling liquid expanding vapor explosion (BLEVE, /ˈblɛviː/ blev-ee) is an explosion caused by the rupture of a vessel",
        'The term "BLEVE" was coined by three researchers at Factory Mutual',
        "In August 1959 the Kansas City Fire Department suffered its largest ever loss of life",
        "Some fire mitigation measures are listed under liquefied petroleum gas.",
    ]
    for piece in content:
        assert not marked(piece), piece
    assert sum(b - a for a, b in spans) < 0.35 * len(text)


def test_single_lines_are_judged_as_furniture_wherever_they_stand():
    for line in (
        '- Jump up ^ `` The Mozilla Manifesto \'\' .',
        "^ Jump up to: a b Kletz, Trevor (March 1990).",
        '"CSV Files". Retrieved June 4, 2014.',
        'Retrieved from "https://en.wikipedia.org/w/index.php?title=Mozilla&oldid=746574460"',
        "Text is available under the Creative Commons Attribution-ShareAlike License; additional terms may apply.",
        "Incidents[edit]",
        "3.2 Firefox Mobile",
    ):
        assert is_boilerplate(line), line
    for line in ("The vault code is 7319.", "In 1998 Netscape released its source code.", "Retrieved the letters from the cellar, she left."):
        assert not is_boilerplate(line), line


def test_a_notes_section_of_prose_stays_content():
    text = "Report\n\nThe bridge opened in 1932.\n\nNotes\n\nThe second span was added in 1951 after the flood of the previous winter destroyed the old ford.\n"
    spans = boilerplate_spans(text)
    at = text.index("The second span")
    assert not in_spans(at, at + 40, spans)


def test_evidence_selection_passes_over_reference_lines_while_content_sentences_exist(engine, wiki_text):
    """The reference list names "BLEVE" in almost every line; the facts chosen are content sentences."""
    ctx = RunContext(engine=engine, budget=Budget())
    chunks = chunk_document(wiki_text, engine.count_tokens, max_tokens=256)
    selector = EvidenceSelector(keep=4, rerank=4)
    pool = selector.pool(chunks)
    spans = boilerplate_spans(wiki_text.text)
    for question in ("Who coined the term BLEVE?", "What is a BLEVE demo of liquid nitrogen?", "Which BLEVE incidents happened in Illinois?"):
        facts = selector.select(ctx, pool, [wiki_text], question)
        assert facts, question
        for fact in facts:
            assert not in_spans(fact.citation.start, fact.citation.end, spans), (question, fact.text)


def test_a_question_about_a_saved_page_reads_content(engine, wiki_text):
    """End to end with the real model: what the answer step read holds no furniture."""
    answer = ContextAgent(engine=engine).ask(wiki_text, "In which year did the Kansas City Fire Department lose five firefighters?", recipe="retrieve_then_reason")
    [evidence] = [s for s in answer.trace.steps if s.name == "evidence"]
    spans = boilerplate_spans(wiki_text.text)
    assert evidence.detail["spans"]
    for _, start, end in evidence.detail["spans"]:
        assert not in_spans(start, end, spans), wiki_text.text[start:end]
    assert "1959" in wiki_text.text[evidence.detail["spans"][0][1] : evidence.detail["spans"][0][2]] or any(
        "1959" in wiki_text.text[s:e] for _, s, e in evidence.detail["spans"]
    )


def test_furniture_is_still_evidence_when_nothing_else_is(engine):
    doc = document_from_text("References[edit]\nJump up ^ Kletz, Trevor (March 1990). Critical Aspects of Safety and Loss Prevention. ISBN 0-408-04429-2.\n", "refs")
    selector = EvidenceSelector(rerank=0)
    ctx = RunContext(engine=engine, budget=Budget())
    facts = selector.select(ctx, selector.pool(chunk_document(doc, engine.count_tokens, max_tokens=256)), [doc], "Who wrote Critical Aspects of Safety and Loss Prevention?")
    assert facts and all(in_spans(f.citation.start, f.citation.end, boilerplate_spans(doc.text)) for f in facts)
