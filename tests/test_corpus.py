"""Corpus indexes and formats, with the real retrievers and parsers (no LLM)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ctxagent.batch.corpus import Corpus
from ctxagent.corpus.index import CorpusIndex
from ctxagent.errors import InputError
from ctxagent.loaders import load_document
from ctxagent.pages import page_of
from tests.corpus_support import paragraphs, write_austen_corpus, write_docx, write_epub, write_pdf

pytest.importorskip("markitdown")

FACT = "The annual rent of Hartfield Lodge is 480 pounds, payable at Michaelmas."


def _exact(doc, needle: str) -> None:
    start = doc.text.index(needle)
    assert doc.text[start : start + len(needle)] == needle


def test_office_formats_load_with_text_that_citations_can_slice(tmp_path: Path) -> None:
    import openpyxl
    from pptx import Presentation

    pool = paragraphs("emma")
    docx = load_document(write_docx(tmp_path / "lease.docx", [pool[5], FACT], heading="Lease"))
    _exact(docx, FACT)
    assert docx.text.startswith("# Lease") and docx.metadata["format"] == "docx"

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Quarterly rents"
    slide.placeholders[1].text = FACT
    deck.save(str(tmp_path / "rents.pptx"))
    _exact(load_document(tmp_path / "rents.pptx"), FACT)

    book = openpyxl.Workbook()
    book.active.append(["property", "rent"])
    book.active.append(["Hartfield Lodge", 480])
    book.save(str(tmp_path / "rents.xlsx"))
    xlsx = load_document(tmp_path / "rents.xlsx")
    assert "Hartfield Lodge" in xlsx.text and "480" in xlsx.text

    (tmp_path / "rents.csv").write_text("property,rent\nHartfield Lodge,480\nDonwell Abbey,900\n", encoding="utf-8")
    csv = load_document(tmp_path / "rents.csv")
    assert "Donwell Abbey" in csv.text and "900" in csv.text

    (tmp_path / "rents.json").write_text('{"property": "Hartfield Lodge", "rent": 480}', encoding="utf-8")
    assert load_document(tmp_path / "rents.json").text == '{"property": "Hartfield Lodge", "rent": 480}'

    epub = load_document(write_epub(tmp_path / "book.epub", "Emma", [pool[7], FACT]))
    _exact(epub, FACT)


def test_damaged_or_invalid_files_fail_alone_naming_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "broken.docx").write_bytes(b"this is not a zip archive")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.docx: not a valid \.docx"):
        load_document(tmp_path / "broken.docx")
    with pytest.raises(InputError, match=r"broken\.json: not valid JSON"):
        load_document(tmp_path / "broken.json")
    write_austen_corpus(tmp_path, files=3)
    index = CorpusIndex(Corpus(tmp_path), root=tmp_path / ".idx", retriever="bm25")
    with caplog.at_level(logging.WARNING, logger="ctxagent"):
        report = index.update()
    assert set(report.failed) == {"broken.docx", "broken.json"}
    assert report.documents == 3 and report.chunks > 0
    assert "broken.docx" in caplog.text
    hits = index.search("Emma Woodhouse", 3)
    assert hits and all(not h.chunk.doc_id.startswith("broken") for h in hits)


def test_pdf_citations_know_their_page(tmp_path: Path) -> None:
    pdf = load_document(write_pdf(tmp_path / "lease.pdf", ["Lease of Hartfield Lodge, first page.", FACT, "Signed at Highbury."]))
    start = pdf.text.index("480 pounds")
    assert page_of(pdf, start) == 2
    assert page_of(pdf, 0) == 1 and page_of(pdf, len(pdf.text) - 1) == 3
    from ctxagent.pages import annotate_pages
    from ctxagent.types import Answer, Citation

    answer = annotate_pages(Answer(text="480", citations=[Citation(doc_id=pdf.id, start=start, end=start + 10, quote=pdf.text[start : start + 10])]), [pdf])
    assert answer.citations[0].page == 2


def test_incremental_update_embeds_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxagent.retrievers.dense import DenseRetriever

    encoded: list[int] = []
    original = DenseRetriever.encode

    def counting(self, texts, prompt="", show_progress=False):  # type: ignore[no-untyped-def]
        if len(texts) > 1 or not texts[0].startswith("QUERY:"):
            encoded.append(len(texts))
        return original(self, texts, prompt, show_progress)

    monkeypatch.setattr(DenseRetriever, "encode", counting)
    docs = tmp_path / "docs"
    files = write_austen_corpus(docs, files=31)
    write_docx(docs / "lease.docx", [paragraphs("emma")[3], FACT])
    index = CorpusIndex(Corpus(docs), root=tmp_path / "idx")
    first = index.update()
    assert first.documents == 32 and not first.failed
    assert sum(encoded) == first.embedded_chunks == first.chunks

    encoded.clear()
    again = CorpusIndex(Corpus(docs), root=tmp_path / "idx").update()
    assert sum(encoded) == 0 and again.unchanged == 32 and not (again.added or again.changed)

    edited = files[4]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nThe Larkspur ferry leaves Kellynch harbour at seven.\n", encoding="utf-8")
    files[7].unlink()
    import os

    os.utime(files[9], ns=(files[9].stat().st_atime_ns, files[9].stat().st_mtime_ns + 5_000_000_000))  # touched, not edited
    encoded.clear()
    index = CorpusIndex(Corpus(docs), root=tmp_path / "idx")
    report = index.update()
    edited_chunks = [c for c in index.retriever.chunks if c.doc_id == edited.name]
    assert report.changed == [edited.name] and report.removed == [files[7].name]
    assert sum(encoded) == report.embedded_chunks == len(edited_chunks)
    assert report.unchanged == 30
    assert all(c.doc_id != files[7].name for c in index.retriever.chunks)
    assert index.search("When does the Larkspur ferry leave Kellynch harbour?", 1)[0].chunk.doc_id == edited.name
    assert index.search("annual rent of Hartfield Lodge", 1)[0].chunk.doc_id == "lease.docx"


def test_damaged_index_is_rebuilt_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_austen_corpus(tmp_path / "docs", files=4)
    CorpusIndex(Corpus(tmp_path / "docs"), root=tmp_path / "idx", retriever="bm25").update()
    victim = next((tmp_path / "idx" / "index").glob("*.npy"))
    victim.write_bytes(victim.read_bytes()[:-8] + b"damaged!")
    index = CorpusIndex(Corpus(tmp_path / "docs"), root=tmp_path / "idx", retriever="bm25")
    with pytest.raises(InputError, match="no usable index"):
        index.load()
    with caplog.at_level(logging.WARNING, logger="ctxagent"):
        report = index.update()
    assert report.rebuilt and report.documents == 4 and len(report.added) == 4
    assert "cannot be used and will be rebuilt" in caplog.text and "checksum" in caplog.text
    assert CorpusIndex(Corpus(tmp_path / "docs"), root=tmp_path / "idx", retriever="bm25").load().search("Emma", 2)


def test_batch_question_across_the_corpus_routes_through_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control flow only (scripted engine): a `"corpus": true` line is answered from the documents retrieval picks."""
    import json

    from ctxagent import batch
    from tests.fakes import ScriptedEngine

    monkeypatch.setenv("CTXAGENT_CACHE", str(tmp_path / "cache"))
    docs = tmp_path / "docs"
    write_austen_corpus(docs, files=6)
    write_docx(docs / "lease.docx", [paragraphs("emma")[3], FACT])
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "rent", "corpus": True, "question": "What is the annual rent of Hartfield Lodge?"}) + "\n"
        + json.dumps({"id": "one", "doc": "lease.docx", "question": "What is the rent?"}) + "\n",
        encoding="utf-8",
    )
    engine = ScriptedEngine(lambda prompt: "The annual rent is 480 pounds." if "480 pounds" in prompt else "NOT FOUND")
    summary = batch.run(docs, questions, tmp_path / "out.jsonl", engine=engine, recipe="auto", progress=False, concurrency=1)
    assert summary.answered == 2 and summary.failed == 0
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert rows["rent"]["corpus"] is True and rows["rent"]["doc"] == ""
    assert {c["doc_id"] for c in rows["rent"]["citations"]} == {"lease.docx"}
    cited = rows["rent"]["citations"][0]
    assert load_document(docs / "lease.docx").text[cited["start"] : cited["end"]] == cited["quote"]
    with pytest.raises(InputError, match="names no"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"doc": "lease.docx", "corpus": True, "question": "x?"}) + "\n", encoding="utf-8")
        batch.read_questions(bad)


@pytest.mark.slow  # starts a Ray cluster: most of a minute on two cores
def test_ray_executor_builds_the_same_index_as_a_local_build(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    import numpy as np

    docs = tmp_path / "docs"
    write_austen_corpus(docs, files=5)
    (docs / "broken.docx").write_bytes(b"not a zip")
    local = CorpusIndex(Corpus(docs), root=tmp_path / "local")
    local_report = local.update()
    # Three shards, one at a time in one Ray worker (each task takes both CPUs): the worker loads the
    # encoder once instead of two workers loading it side by side on two cores.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = CorpusIndex(Corpus(docs), root=tmp_path / "ray")
        report = remote.update(executor="ray", ray_options={"shard_size": 2, "cpus_per_task": 2})
    finally:
        ray.shutdown()
    assert report.embedded_chunks == local_report.embedded_chunks > 0
    assert set(report.failed) == {"broken.docx"}
    assert remote.retriever.corpus_hash == local.retriever.corpus_hash
    assert np.allclose(remote.retriever.dense.embeddings, local.retriever.dense.embeddings, atol=1e-5)
