"""A real-text corpus for the corpus tests: files cut from the bundled Austen novels."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "ctxagent" / "evaluation" / "data"
NOVELS = ("emma", "persuasion", "pride_and_prejudice")


def paragraphs(novel: str) -> list[str]:
    text = (DATA / f"{novel}.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]


def write_austen_corpus(folder: Path, files: int = 33, paragraphs_per_file: int = 4, start: int = 0) -> list[Path]:
    """`files` plain-text files (.txt and .md alternating) of consecutive real paragraphs."""
    folder.mkdir(parents=True, exist_ok=True)
    pools = {novel: paragraphs(novel) for novel in NOVELS}
    written: list[Path] = []
    for n in range(files):
        novel = NOVELS[n % len(NOVELS)]
        pool = pools[novel]
        first = (start + (n // len(NOVELS)) * paragraphs_per_file) % max(1, len(pool) - paragraphs_per_file)
        body = "\n\n".join(pool[first : first + paragraphs_per_file])
        path = folder / f"{novel}_{n:03d}{'.md' if n % 2 else '.txt'}"
        path.write_text(body + "\n", encoding="utf-8")
        written.append(path)
    return written


def write_docx(path: Path, paragraphs_text: list[str], heading: str | None = None) -> Path:
    import docx

    document = docx.Document()
    if heading:
        document.add_heading(heading, level=1)
    for text in paragraphs_text:
        document.add_paragraph(text)
    document.save(str(path))
    return path


def write_pdf(path: Path, pages: list[str]) -> Path:
    """A minimal text PDF, one line per page, written by hand (no PDF writer needed)."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 11 Tf 40 750 Td ({escaped}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def write_epub(path: Path, title: str, paragraphs_text: list[str]) -> Path:
    """A minimal valid EPUB 3 (one chapter), built with zipfile."""
    import zipfile

    body = "".join(f"<p>{p}</p>" for p in paragraphs_text)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')
        z.writestr("OEBPS/content.opf", f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">x</dc:identifier><dc:title>{title}</dc:title><dc:language>en</dc:language></metadata><manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/></spine></package>')
        z.writestr("OEBPS/c1.xhtml", f'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head><body>{body}</body></html>')
    return path
