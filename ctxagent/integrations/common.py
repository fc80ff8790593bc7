"""What both adapters share: opening a corpus index, and compressing foreign documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ctxagent.types import Chunk, Document


def open_corpus_index(corpus: Any, update: bool = True, **index_options: Any) -> Any:
    """A CorpusIndex for a path, a Corpus or a CorpusIndex; updated (or loaded) once (ctxagent.corpus.open_index)."""
    from ctxagent.corpus.index import open_index

    return open_index(corpus, update=update, **index_options)


@dataclass
class KeptText:
    """What a compressor kept of one input document: its text and the source spans."""

    position: int
    text: str
    spans: list[tuple[int, int]]


def compress_texts(texts: Sequence[str], query: str, compressor: str, ratio: float, options: dict[str, Any]) -> list[KeptText]:
    """Compress several texts together for `query` and split what was kept back per text
    (texts with nothing kept are left out). Chunked with the index's ~4-characters-per-token
    rule, so no LLM tokenizer is needed unless the compressor scores with a model."""
    from ctxagent.chunking import chunk_document
    from ctxagent.compressors import get_compressor
    from ctxagent.corpus.index import approximate_tokens

    documents = [Document(id=str(i), text=t) for i, t in enumerate(texts) if t.strip()]
    chunks: list[Chunk] = [c for d in documents for c in chunk_document(d, approximate_tokens, 200)]
    if not chunks:
        return []
    compressed = get_compressor(compressor, **options).compress(chunks, query, ratio=ratio)
    by_doc: dict[int, list[tuple[int, int]]] = {}
    for span in compressed.spans:
        by_doc.setdefault(int(span.doc_id), []).append((span.start, span.end))
    kept = []
    for position, spans in sorted(by_doc.items()):
        spans.sort()
        text = " ".join(texts[position][s:e] for s, e in spans)
        kept.append(KeptText(position, text, spans))
    return kept
