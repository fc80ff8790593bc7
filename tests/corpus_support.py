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
