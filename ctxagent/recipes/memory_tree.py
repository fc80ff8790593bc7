"""`memory_tree`: answer from a cached summary tree, by navigation or by collapsed retrieval.

mode="navigate" (MemWalker-style): from the root, the model is shown the children's
summaries (with each node's key sentences, the most distinctive source sentences
under it) and picks the one most likely to hold the answer; children are visited in
order of how much of the question their summary and key sentences contain, the
model's pick first among equals. At a leaf the evidence is chosen by scores, not
written by the model (evidence.py: BM25, sentence encoder, engine log-probs), so the
summaries steer the walk but the facts are always sentences of the source. A leaf that yields nothing sends the walk back
up to the next most promising sibling (backtracking).

mode="collapsed" (RAPTOR-style): every node of every level, leaf chunks and summaries
alike, is indexed by a retriever; the best hits are mapped to the leaf chunks under
them, whose sentences are scored together; open chains are followed over all leaves
(`Budget.max_hops`). Answers always quote the source text, never
a summary, so citations stay exact.

The tree is built on first use and cached on disk (see tree.py); a later question
about the same document pays only for the reading.
"""

from __future__ import annotations

import re
from typing import Sequence

from ctxagent.engines.base import SamplingParams
from ctxagent.errors import BudgetExhausted, InputError
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.evidence import EvidenceSelector, SentencePool, follow_chain
from ctxagent.recipes.prompts import choose_prompt, extract_prompt, summary_prompt
from ctxagent.recipes.reading import (
    EXTRACT_TOKENS,
    Facts,
    answer_from_facts,
    confirmed,
    fit_chunks,
    partial_answer,
    relevance,
    window_room,
)
from ctxagent.recipes.tree import MemoryTree, TreeNode, build_tree, engine_model_name, load_tree, save_tree, tree_key, tree_path
from ctxagent.types import Answer, Chunk, Document

MODES = ("navigate", "collapsed")
# Tokens of question the leaf size leaves room for (the question appears twice in a read prompt).
QUESTION_TOKENS = 48
# Share of the time budget that building a tree may take; the rest is for searching it.
BUILD_SHARE = 0.6
# Characters per token assumed when cutting node descriptions to fit the navigation prompt (conservative).
CHARS_PER_TOKEN = 3


@register("memory_tree")
class MemoryTreeRecipe:
    """mode: "navigate" or "collapsed"; fanout: children per summary node; max_leaves: leaves
    read before giving up (navigate) or read at once (collapsed); retriever: for collapsed mode."""

    name = "memory_tree"

    def __init__(
        self,
        mode: str = "navigate",
        fanout: int = 4,
        summary_tokens: int = 64,
        chunk_tokens: int | None = None,
        max_leaves: int | None = None,
        retriever: str = "bm25",
        cache: bool = True,
        selector: EvidenceSelector | None = None,
    ) -> None:
        if mode not in MODES:
            raise InputError(f"memory_tree mode {mode!r} is unknown: use one of {', '.join(MODES)}")
        if fanout < 2:
            raise InputError(f"memory_tree fanout must be at least 2, got {fanout}")
        self.mode, self.fanout, self.summary_tokens = mode, fanout, summary_tokens
        self.chunk_tokens, self.max_leaves, self.retriever, self.cache = chunk_tokens, max_leaves, retriever, cache
        self.selector = selector or EvidenceSelector()

    def _answer(self, ctx: RunContext, pool: SentencePool, documents: Sequence[Document], question: str, facts: Facts, notes: Sequence[str] = (), read: Sequence[int] | None = None) -> Answer:
        """Follow open chains (among the leaves `read`, all when None), then answer from the facts."""
        follow_chain(ctx, self.selector, pool, documents, question, facts, max_hops=ctx.budget.max_hops, fetch=lambda query: read)
        return answer_from_facts(ctx, self.name, documents, question, facts, notes)

    # -- the artifact ---------------------------------------------------------------------
    def _key(self, ctx: RunContext, documents: Sequence[Document]) -> tuple[str, int]:
        """The tree's cache key and leaf size; independent of the question, so every question shares it."""
        room = min(
            window_room(ctx, extract_prompt("", ""), EXTRACT_TOKENS) - 2 * QUESTION_TOKENS,
            window_room(ctx, summary_prompt(""), self.summary_tokens),
        )
        size = min(room, self.chunk_tokens or room)
        return tree_key(documents, engine_model_name(ctx), size, self.fanout, self.summary_tokens), size

    def cached(self, ctx: RunContext, documents: Sequence[Document], question: str = "") -> bool:
        """Is a tree for these documents (with this engine and these settings) on disk?"""
        return self.cache and tree_path(self._key(ctx, documents)[0]).is_file()

    def tree(self, ctx: RunContext, documents: Sequence[Document], question: str) -> MemoryTree:
        """The cached tree for these documents, built (and saved) when there is none."""
        if ctx.count_tokens(question) > QUESTION_TOKENS:
            raise InputError(
                f"the question has {ctx.count_tokens(question)} tokens; memory_tree leaves room for {QUESTION_TOKENS}: "
                "shorten the question or use map_reduce"
            )
        key, size = self._key(ctx, documents)
        tree = load_tree(key) if self.cache else None
        if tree is not None:
            ctx.trace.add("tree", cached=True, key=key, nodes=len(tree.nodes), leaves=len(tree.chunks))
            return tree
        chunks = fit_chunks(ctx, documents, size)
        share = None if ctx.budget.max_seconds is None else BUILD_SHARE * ctx.budget.max_seconds
        with ctx.time_limit(share):
            tree = build_tree(ctx, documents, chunks, key, self.fanout, self.summary_tokens)
        if self.cache and tree.complete:
            save_tree(tree)
        ctx.trace.add("tree", cached=False, complete=tree.complete, key=key, nodes=len(tree.nodes), leaves=len(tree.chunks))
        return tree

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        try:
            tree = self.tree(ctx, documents, question)
        except BudgetExhausted as exc:
            ctx.trace.add("budget_exhausted", axis=exc.axis, limit=exc.limit)
            return ctx.answer("", recipe=self.name, partial=True, notes=[f"{exc} while building the memory tree; nothing was read yet. Raise the budget or use retrieve_then_reason"])
        answer = self._collapsed(ctx, tree, documents, question) if self.mode == "collapsed" else self._navigate(ctx, tree, documents, question)
        if tree.complete:
            return answer
        cut = next((st.detail for st in reversed(ctx.trace.steps) if st.name == "tree:cut_short"), {})
        limit = f"{cut.get('axis', 'budget')} limit {cut.get('limit', '?')}"
        note = (
            f"the {limit} cut the tree's summaries short (building gets {BUILD_SHARE:.0%} of a time budget); "
            "the nodes without one were searched by their key sentences, and the tree was not cached"
        )
        return answer.model_copy(update={"partial": True, "notes": [*answer.notes, note]})

    # -- navigation ---------------------------------------------------------------------
    def _order(self, ctx: RunContext, tree: MemoryTree, children: list[int], question: str) -> list[int]:
        """Children best first: by how much of the question their summary and key sentences
        contain, the model's pick first among equals.

        A small model's pick alone sends the walk down a wrong subtree (and depth-first
        search then reads all of it) as often as not; word overlap with the key sentences
        is the stronger signal when it separates the children, the model decides when it
        does not.
        """
        if len(children) == 1:
            return children
        overlap = {c: round(relevance(tree.nodes[c].describe(10_000), question), 3) for c in children}
        # Each child's description gets an equal share of the window.
        share = max(120, CHARS_PER_TOKEN * (window_room(ctx, choose_prompt([], question), 6) // len(children) - 8))
        prompt = choose_prompt([tree.nodes[c].describe(share) for c in children], question)
        [reply] = ctx.generate([prompt], SamplingParams(max_new_tokens=6), step="navigate", node_children=children)
        match = re.search(r"\d+", reply.text)
        pick = int(match.group()) - 1 if match else -1
        chosen = children[pick] if 0 <= pick < len(children) else None
        order = sorted(children, key=lambda c: (-overlap[c], c != chosen))
        ctx.trace.add("navigate:choice", model_pick=chosen, reply=reply.text[:20], overlap=[overlap[c] for c in children], order=order)
        return order

    def _navigate(self, ctx: RunContext, tree: MemoryTree, documents: Sequence[Document], question: str) -> Answer:
        facts, pool = Facts(), self.selector.pool(tree.chunks)
        limit = self.max_leaves or len(tree.chunks)
        read = 0
        # Depth-first walk; each frame holds the remaining children of a node, best first.
        stack: list[list[int]] = []
        try:
            stack.append(self._order(ctx, tree, list(tree.roots), question))
            while stack and read < limit:
                frame = stack[-1]
                if not frame:
                    stack.pop()
                    if stack:
                        ctx.trace.add("navigate:backtrack", depth=len(stack))
                    continue
                node = tree.nodes[frame.pop(0)]
                if node.chunk is None:
                    stack.append(self._order(ctx, tree, node.children, question))
                    continue
                found = self.selector.select(ctx, pool, documents, question, positions=[node.chunk], step="navigate:read", leaf=node.chunk)
                read += 1
                if facts.add(found):
                    answer = self._answer(ctx, pool, documents, question, facts)
                    if confirmed(answer):
                        ctx.trace.add("stop", why=f"answer found at leaf {node.chunk}", leaves_read=read, leaves=len(tree.chunks))
                        return answer
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, question, facts, exc, read, len(tree.chunks))
        notes = [] if read == len(tree.chunks) else [f"read {read} of {len(tree.chunks)} leaves (max_leaves={limit})"]
        try:
            return self._answer(ctx, pool, documents, question, facts, notes)
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, question, facts, exc, read, len(tree.chunks))

    # -- collapsed tree -----------------------------------------------------------------
    def _collapsed(self, ctx: RunContext, tree: MemoryTree, documents: Sequence[Document], question: str) -> Answer:
        from ctxagent.recipes.retrieval import ChunkIndex

        # Each node becomes a pseudo-chunk of its own text: the chunk's text for a leaf, the summary above.
        node_chunks = [tree.chunks[n.chunk] if n.chunk is not None else _summary_chunk(n) for n in tree.nodes]
        k = self.max_leaves or 3
        hits = ChunkIndex(self.retriever, node_chunks).search(question, k=max(k, 4) * 2)
        leaves: list[int] = []
        for node_id, _ in hits:
            under = tree.leaves_under(node_id)
            # A summary hit stands for its leaves; read the one that best matches the question first.
            under.sort(key=lambda c: -relevance(tree.chunks[c].text, question))
            for leaf in under[:2]:
                if leaf not in leaves:
                    leaves.append(leaf)
        leaves = leaves[:k]
        ctx.trace.add("collapsed:retrieve", retriever=self.retriever, hits=[[tree.nodes[n].level, n, round(s, 4)] for n, s in hits], leaves=leaves)
        facts, pool = Facts(), self.selector.pool(tree.chunks)
        try:
            facts.add(self.selector.select(ctx, pool, documents, question, positions=leaves, step="collapsed:read"))
            return self._answer(ctx, pool, documents, question, facts)
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, question, facts, exc, len(leaves), len(leaves))


def _summary_chunk(node: TreeNode) -> Chunk:
    """An inner node as a pseudo-chunk of its summary and key sentences, for the retriever."""
    text = node.describe(10_000)
    return Chunk(doc_id=f"{node.doc_id}#summary", index=node.id, start=0, end=len(text), text=text)
