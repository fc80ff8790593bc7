"""The memory tree: a summary tree over a document's chunks, built once and cached on disk.

Leaves are chunks; each level above summarises up to `fanout` nodes of the level
below, until one root per document remains (MemWalker's tree; RAPTOR builds a
similar one by clustering). Building costs one batched engine call per level and
reads the whole document once, so the tree is an artifact: it is saved under
`cache_dir("trees")`, keyed by the documents' content hashes, the engine and model,
the chunking and the prompt version, and reused by every later question and run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from pydantic import BaseModel, Field, ValidationError

from ctxagent.cache import cache_dir
from ctxagent.chunking import sentence_spans
from ctxagent.citations import content_words
from ctxagent.engines.base import SamplingParams
from ctxagent.errors import BudgetExhausted
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.prompts import summary_prompt
from ctxagent.types import Chunk, Document

log = logging.getLogger(__name__)

# Bump when the summary prompt or the tree layout changes, so old trees are not reused.
TREE_VERSION = 2
# Leaves summarised per engine call: the budget is checked between groups, and no call holds
# the whole document's prompts (and, in a local engine, their states) at once.
LEAF_GROUP = 8
# Key sentences kept per node, and the longest sentence that can be one.
KEYS_PER_NODE = 2
KEY_MAX_CHARS = 240


class TreeNode(BaseModel):
    id: int
    level: int = Field(ge=0, description="0 for a leaf (a chunk)")
    summary: str
    children: list[int] = Field(default_factory=list)
    doc_id: str
    start: int
    end: int
    chunk: int | None = Field(default=None, description="index into MemoryTree.chunks for a leaf")
    keys: list[str] = Field(default_factory=list, description="the most distinctive source sentences under the node, best first")
    key_scores: list[float] = Field(default_factory=list)

    def describe(self, max_chars: int = 600) -> str:
        """What navigation shows of a node: its summary and its key sentences, within `max_chars`."""
        text = self.summary if not self.keys else f"{self.summary} Key sentences: {' '.join(self.keys)}"
        return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


class MemoryTree(BaseModel):
    key: str
    chunks: list[Chunk]
    nodes: list[TreeNode]
    roots: list[int]
    complete: bool = Field(default=True, description="False when the time budget cut the summaries short (such a tree is not cached)")

    def leaves_under(self, node_id: int) -> list[int]:
        """Chunk indexes under a node, in document order."""
        node = self.nodes[node_id]
        if node.chunk is not None:
            return [node.chunk]
        return [c for child in node.children for c in self.leaves_under(child)]


def key_sentences(chunks: Sequence[Chunk]) -> list[list[tuple[float, str]]]:
    """Per chunk, its most distinctive sentences: words rare across the document's chunks, and numbers.

    A small model's summary drops the odd fact a question asks about (a code, a date, a
    name mentioned once); an extractive pick by inverse chunk frequency keeps it, so
    navigation can still see it. Question-independent, so it is cached with the tree.
    """
    words_of = [set(content_words(c.text)) for c in chunks]
    df = Counter(w for words in words_of for w in words)
    n = len(chunks)
    out = []
    for chunk in chunks:
        scored = []
        for span in sentence_spans(chunk.text):
            sentence = chunk.text[span.start : span.end]
            words = set(content_words(sentence))
            if len(words) < 3 or len(sentence) > KEY_MAX_CHARS:
                continue
            rarity = sum(math.log((n + 1) / (df[w] + 0.5)) for w in words) / len(words)
            scored.append((rarity + (0.5 if any(ch.isdigit() for ch in sentence) else 0.0), sentence))
        out.append(sorted(scored, reverse=True)[:KEYS_PER_NODE])
    return out


def engine_model_name(ctx: RunContext) -> str:
    return f"{ctx.engine.name}:{getattr(ctx.engine, 'model_name', '')}"


def tree_key(documents: Sequence[Document], model: str, chunk_tokens: int, fanout: int, summary_tokens: int) -> str:
    """Same documents, model, chunking and prompt version: same tree."""
    parts = [TREE_VERSION, model, chunk_tokens, fanout, summary_tokens, [d.id for d in documents], [d.content_hash for d in documents]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def tree_path(key: str) -> Path:
    return cache_dir("trees") / f"{key}.json"


def load_tree(key: str) -> MemoryTree | None:
    """The cached tree for `key`, or None when absent; a damaged file is deleted and rebuilt."""
    path = tree_path(key)
    if not path.is_file():
        return None
    try:
        tree = MemoryTree.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError) as exc:
        log.warning("memory tree %s is unreadable (%s); rebuilding it", path, exc)
        path.unlink(missing_ok=True)
        return None
    if tree.key != key:
        log.warning("memory tree %s was built for another key; rebuilding it", path)
        return None
    return tree


def save_tree(tree: MemoryTree) -> Path:
    """Write beside the target and rename, so a crash never leaves a half-written tree."""
    path = tree_path(tree.key)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_text(tree.model_dump_json(), encoding="utf-8")
    partial.replace(path)
    return path


class _Summariser:
    """Summaries by the engine until the time budget runs out; after that, none (the caller
    falls back to extractive text), so a tree cut short still has every node."""

    def __init__(self, ctx: RunContext, summary_tokens: int) -> None:
        self.ctx, self.cut = ctx, False
        self.params = SamplingParams(max_new_tokens=summary_tokens, stop=["\n\n"])

    def __call__(self, texts: Sequence[str], step: str) -> list[str]:
        out: list[str] = []
        for at in range(0, len(texts), LEAF_GROUP):
            group = texts[at : at + LEAF_GROUP]
            if not self.cut:
                try:
                    replies = self.ctx.generate([summary_prompt(t) for t in group], self.params, step=step, nodes=len(group))
                    out += [r.text.strip() for r in replies]
                    continue
                except BudgetExhausted as exc:
                    self.cut = True
                    self.ctx.trace.add("tree:cut_short", axis=exc.axis, limit=exc.limit, summarised=len(out), step=step)
            out += [""] * len(group)
        return out


def build_tree(ctx: RunContext, documents: Sequence[Document], chunks: Sequence[Chunk], key: str, fanout: int, summary_tokens: int) -> MemoryTree:
    """Summarise leaves (LEAF_GROUP per engine call), then groups of `fanout` summaries, level by level.

    When the time budget runs out part-way, the rest of the tree is built without the engine:
    a node's summary is then its key sentences (or its text's start), so navigation still has
    something to read, and the tree is marked `complete=False` (not to be cached)."""
    summarise = _Summariser(ctx, summary_tokens)
    replies = summarise([c.text for c in chunks], "tree:leaves")
    keys = key_sentences(chunks)
    nodes = [
        TreeNode(
            id=i, level=0, summary=r or " ".join(t for _, t in k) or c.text[:200], doc_id=c.doc_id, start=c.start, end=c.end, chunk=i,
            keys=[t for _, t in k], key_scores=[round(v, 4) for v, _ in k],
        )
        for i, (c, r, k) in enumerate(zip(chunks, replies, keys))
    ]
    level_ids = {d.id: [n.id for n in nodes if n.doc_id == d.id] for d in documents}
    level = 0
    while any(len(ids) > 1 for ids in level_ids.values()):
        level += 1
        groups: list[tuple[str, list[int]]] = []
        for doc_id, ids in level_ids.items():
            if len(ids) == 1:
                continue
            groups += [(doc_id, ids[i : i + fanout]) for i in range(0, len(ids), fanout)]
        texts = ["\n".join(nodes[c].summary for c in group) for _, group in groups]
        replies = summarise(texts, f"tree:level{level}")
        next_ids = {doc_id: ids for doc_id, ids in level_ids.items() if len(ids) == 1}
        for (doc_id, group), reply, text in zip(groups, replies, texts):
            best = sorted(((v, t) for c in group for v, t in zip(nodes[c].key_scores, nodes[c].keys)), reverse=True)[:KEYS_PER_NODE]
            node = TreeNode(
                keys=[t for _, t in best],
                key_scores=[v for v, _ in best],
                id=len(nodes),
                level=level,
                summary=reply or " ".join(t for _, t in best) or text[:300],
                children=group,
                doc_id=doc_id,
                start=nodes[group[0]].start,
                end=nodes[group[-1]].end,
            )
            nodes.append(node)
            next_ids.setdefault(doc_id, []).append(node.id)
        level_ids = {d.id: next_ids[d.id] for d in documents if d.id in next_ids}
    roots = [ids[0] for ids in level_ids.values()]
    return MemoryTree(key=key, chunks=list(chunks), nodes=nodes, roots=roots, complete=not summarise.cut)
