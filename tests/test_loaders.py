"""Loaders on real files of each type, and every bad input the foundation promises to reject."""

from __future__ import annotations

import pytest

from ctxagent.errors import InputError
from ctxagent.loaders import document_from_text, load_document


@pytest.mark.parametrize("name", ["memo.txt", "memo.md", "memo.html", "memo.pdf"])
def test_each_file_type_yields_its_text(data_dir, name):
    doc = load_document(data_dir / name)
    assert doc.id == name
    assert "vault code is" in doc.text and "7319" in doc.text
    assert "moved to Friday" in doc.text


def test_html_drops_scripts_and_keeps_inline_text_in_its_sentence(data_dir):
    doc = load_document(data_dir / "memo.html")
    assert "secret" not in doc.text and "color" not in doc.text
    assert "The vault code is 7319." in doc.text
    assert doc.metadata["title"] == "Board memo"


def test_pdf_records_where_each_page_starts(data_dir):
    doc = load_document(data_dir / "memo.pdf")
    assert doc.metadata["pages"] == 2
    second = doc.metadata["page_starts"][1]
    assert doc.text[second:].startswith("Page two.")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="file not found: .*nope.txt"):
        load_document(tmp_path / "nope.txt")



def test_text_passed_as_a_path_is_a_clear_error_not_an_oserror():
    """A user who passes a document's text where a path goes gets an InputError that says
    how to pass text, with the text cut short: a whole book once came back as an OSError
    ('File name too long') that printed all of it."""
    book = "Chapter 3\n\n" + "It was a truth universally acknowledged. " * 400
    with pytest.raises(InputError, match=r"not a file path .*\(16411 characters\); .*pass Document\(id=") as caught:
        load_document(book)
    assert len(str(caught.value)) < 300
    with pytest.raises(InputError, match=r"file not found: 'It rained.\\nThen it stopped.'.*document_from_text"):
        load_document("It rained.\nThen it stopped.")


def test_invalid_utf8_names_the_byte_and_the_fix(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.txt: not valid utf-8 at byte 3.*encoding="):
        load_document(path)
    assert load_document(path, encoding="latin-1").text == "café au lait"


def test_binary_and_empty_and_unknown_types_are_rejected(tmp_path):
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputError, match="binary"):
        load_document(binary)
    empty = tmp_path / "empty.md"
    empty.write_text("  \n\n ")
    with pytest.raises(InputError, match="empty"):
        load_document(empty)
    odd = tmp_path / "sheet.numbers"
    odd.write_bytes(b"PK")
    with pytest.raises(InputError, match="unsupported file type '.numbers'"):
        load_document(odd)
    damaged = tmp_path / "sheet.xlsx"  # a supported type (ctxagent[office]) whose bytes are not a workbook
    damaged.write_bytes(b"PK")
    with pytest.raises(InputError, match=r"sheet\.xlsx: not a valid \.xlsx file"):
        load_document(damaged)
    with pytest.raises(InputError, match="folder"):
        load_document(tmp_path)


def test_broken_pdf_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(InputError, match="broken.pdf"):
        load_document(path)


def test_text_from_memory_must_not_be_empty():
    with pytest.raises(InputError, match="empty"):
        document_from_text("   ")
