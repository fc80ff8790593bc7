"""Files to Documents: .txt, .md, .html, .pdf, .json and (ctxagent.office) .docx .pptx .xlsx .epub .csv.

A loader either returns a Document whose text is what later citations quote, or
raises InputError naming the file, what is wrong and what to do. It never
guesses: binary input, bad UTF-8 and empty files are errors, not blank answers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from ctxagent.errors import InputError
from ctxagent.types import Document

Loader = Callable[[Path, bytes, str], tuple[str, dict]]


def _decode(path: Path, data: bytes, encoding: str) -> str:
    if b"\x00" in data[:8192]:
        raise InputError(f"{path}: looks like a binary file (it contains NUL bytes); convert it to text, HTML or PDF first")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not valid {encoding} at byte {exc.start} ({data[exc.start:exc.start + 4]!r}); "
            "pass encoding='latin-1' (CLI: --encoding latin-1) or the file's real encoding"
        ) from None


def _load_text(path: Path, data: bytes, encoding: str) -> tuple[str, dict]:
    return _decode(path, data, encoding).replace("\r\n", "\n"), {}


_BLOCK_TAGS = (
    "p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "blockquote", "pre",
    "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "table", "ul", "ol", "figure", "figcaption",
)


_FURNITURE_SELECTOR = ", ".join(
    [
        "nav", "footer", "[role=navigation]", "[role=contentinfo]",
        "#toc", ".toc", "#mw-navigation", "#mw-panel", "#mw-head", "#footer", "#catlinks", ".catlinks",
        ".navbox", ".vertical-navbox", ".mw-editsection", ".mw-jump", "#jump-to-nav", ".mw-jump-link",
        "sup.reference", "ol.references", ".reflist", ".refbegin", ".mw-references-wrap", "#siteSub", "#contentSub",
        ".printfooter", ".mw-cite-backlink", ".hatnote", ".noprint", ".mw-indicators", "#siteNotice", ".sistersitebox",
    ]
)  # fmt: skip


def _load_html(path: Path, data: bytes, encoding: str) -> tuple[str, dict]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(path, data, encoding), "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else None
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    # Page furniture, not content: navigation, footers, and MediaWiki's chrome (contents box, "[edit]"
    # links, reference markers and lists, navboxes, category links). See ctxagent.boilerplate.
    for tag in soup.select(_FURNITURE_SELECTOR):
        tag.decompose()
    # Block elements end paragraphs; inline ones (<b>, <a>) must not break the sentence they sit in.
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.append("\n\n")
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text, ({"title": title} if title else {})


def _load_pdf(path: Path, data: bytes, encoding: str) -> tuple[str, dict]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a readable PDF ({exc})") from None
    page_starts, parts, offset = [], [], 0
    for page in pages:
        page_starts.append(offset)
        parts.append(page.strip())
        offset += len(parts[-1]) + 2
    text = "\n\n".join(parts)
    if not text.strip():
        raise InputError(f"{path}: the PDF has no extractable text (a scanned PDF?); run OCR on it first")
    return text, {"pages": len(pages), "page_starts": page_starts}


def _load_office(path: Path, data: bytes, encoding: str) -> tuple[str, dict]:
    from ctxagent.office import load_office

    return load_office(path, data, encoding)


def _load_json(path: Path, data: bytes, encoding: str) -> tuple[str, dict]:
    """The file's own text, checked to be JSON, so citations quote the file exactly."""
    import json

    text = _decode(path, data, encoding).replace("\r\n", "\n")
    try:
        json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); fix the file or rename it to .txt") from None
    return text, {"format": "json"}


LOADERS: dict[str, Loader] = {
    ".txt": _load_text,
    ".text": _load_text,
    ".md": _load_text,
    ".markdown": _load_text,
    ".rst": _load_text,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".json": _load_json,
    ".docx": _load_office,
    ".pptx": _load_office,
    ".xlsx": _load_office,
    ".epub": _load_office,
    ".csv": _load_office,
}


def printable(name: str) -> str:
    """A file name that can be printed and saved as JSON: bytes of a name that is not UTF-8
    (kept by Python as surrogates) become `\\xNN` escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_TEXT_HINT = "; to ask about text in memory, pass Document(id=..., text=...) or ctxagent.loaders.document_from_text(text)"


def _shown(name: str, limit: int = 80) -> str:
    """A path as an error shows it: text passed by mistake can be a whole book."""
    name = printable(name)
    return repr(name) if len(name) <= limit and "\n" not in name else f"{name[:limit]!r}... ({len(name)} characters)"


def load_document(path: str | Path, doc_id: str | None = None, encoding: str = "utf-8") -> Document:
    """Read one file into a Document whose id defaults to the file name."""
    path = Path(path)
    try:
        found = path.exists()
    except OSError as exc:  # a name too long for a path, say: text passed where a path goes
        raise InputError(f"not a file path ({exc.strerror}): {_shown(str(path))}{_TEXT_HINT}") from None
    if not found:
        looks_like_text = "\n" in str(path) or len(str(path)) > 255
        raise InputError(f"file not found: {_shown(str(path))}{_TEXT_HINT if looks_like_text else ''}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass a file (for a corpus, use `ctxagent batch`)")
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise InputError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; supported: {', '.join(sorted(LOADERS))}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    text, metadata = loader(path, data, encoding)
    if not text.strip():
        raise InputError(f"{path}: the file is empty (no text to ask about)")
    return Document(id=doc_id or printable(path.name), text=text, metadata={"source": printable(str(path)), **metadata})


def document_from_text(text: str, doc_id: str = "text") -> Document:
    """A Document from a string already in memory (stdin, an API), with the same checks as files."""
    if not text.strip():
        raise InputError(f"{doc_id}: the text is empty (no text to ask about)")
    return Document(id=doc_id, text=text)
