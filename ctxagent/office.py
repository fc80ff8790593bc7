"""Office formats and e-books to text: .docx, .pptx, .xlsx, .epub, .csv through markitdown.

Why markitdown: one maintained library (Microsoft) covers every format asked for, each
through the well-kept parser for it (mammoth for Word, python-pptx, openpyxl/pandas,
ebooklib-free EPUB reading), and it writes Markdown, so headings, slide titles and
table rows survive as text a model and BM25 can use. `unstructured` covers more
formats but pulls in a far heavier stack; per-format libraries would mean five
converters of our own. The Markdown markitdown returns *is* the document text: every
citation is an exact slice of it. JSON is kept as the file's own text, so a quote from
it is a quote from the file.

markitdown answers a file it cannot parse with a plain-text fallback rather than an
error, so the zip-based formats are checked to be zip archives first: a damaged
.docx is an error naming the file, never an answer quoting its bytes.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from ctxagent.errors import EngineNotInstalled, InputError

ZIP_FORMATS = (".docx", ".pptx", ".xlsx", ".epub")
OFFICE_FORMATS = (*ZIP_FORMATS, ".csv")

_converter: Any = None


def _markitdown() -> Any:
    global _converter
    if _converter is None:
        try:
            from markitdown import MarkItDown
        except ImportError:
            raise EngineNotInstalled("reading .docx/.pptx/.xlsx/.epub/.csv needs markitdown: `pip install \"ctxagent[office]\"`") from None
        _converter = MarkItDown(enable_plugins=False)
    return _converter


def load_office(path: Path, data: bytes, encoding: str) -> tuple[str, dict]:
    """Text and metadata of an office file or e-book; InputError naming the file if it is damaged."""
    suffix = path.suffix.lower()
    if suffix in ZIP_FORMATS and not zipfile.is_zipfile(io.BytesIO(data)):
        raise InputError(f"{path}: not a valid {suffix} file (it is not the zip archive that format requires); the file is damaged or misnamed")
    converter = _markitdown()
    from markitdown import StreamInfo

    try:
        result = converter.convert_stream(io.BytesIO(data), stream_info=StreamInfo(extension=suffix, filename=path.name, charset=encoding if suffix == ".csv" else None))
    except Exception as exc:  # noqa: BLE001 - markitdown wraps every parser's own errors
        raise InputError(f"{path}: cannot read this {suffix} file ({type(exc).__name__}: {str(exc)[:200]}); is it damaged?") from None
    text = (result.markdown or "").replace("\r\n", "\n").strip()
    metadata: dict[str, Any] = {"format": suffix.lstrip("."), "converter": "markitdown"}
    if result.title:
        metadata["title"] = result.title
    return text, metadata
