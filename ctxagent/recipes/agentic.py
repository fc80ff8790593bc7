"""`agentic`: the model plans its own reading with a few actions, under a step budget.

In the spirit of LC-Boost and recursive language models: instead of a fixed plan, the
model sees the question, the verified facts so far and what its last step found, and
picks the next action from a short numbered menu:

    search   new keywords (written by the model) over the document's chunks
    read     the best search result not read yet
    around   the chunks on either side of the last one read
    answer   answer from the verified facts and stop

Reading is the same evidence selection every recipe uses (evidence.py: sentences
scored by BM25, the sentence encoder and the engine's log-probs, never copied by the
model), so whatever the model decides, only sentences of the source become facts.
Before answering, open chains in the facts (a name the question lacks, connected to
nothing else) are followed with follow-up searches, up to `Budget.max_hops`. A small model often
answers the menu badly; the controller then takes the obvious step (read the next
result; answer once a fact is verified), records in the trace that it did, and
refuses moves that cannot help (answering with no fact while results are unread,
reading past the last result). The walk ends at `answer`, after `max_steps`, or when
the Budget runs out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from ctxagent.engines.base import SamplingParams
from ctxagent.errors import BudgetExhausted
from ctxagent.recipes import register
from ctxagent.recipes.context import RunContext
from ctxagent.recipes.evidence import EvidenceSelector, SentencePool, follow_chain
from ctxagent.recipes.prompts import action_prompt, extract_prompt, query_prompt
from ctxagent.recipes.reading import EXTRACT_TOKENS, Facts, answer_from_facts, fit_chunks, partial_answer, window_room
from ctxagent.recipes.retrieval import ChunkIndex
from ctxagent.types import Answer, Chunk, Document

ACTIONS = ("search", "read", "around", "answer")


@dataclass
class _State:
    chunks: list[Chunk]
    pool: SentencePool
    results: list[int] = field(default_factory=list)  # search hits, best first
    read: list[int] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    observation: str = "nothing yet"

    def unread_results(self) -> list[int]:
        return [i for i in self.results if i not in self.read]

    def unread_neighbours(self) -> list[int]:
        if not self.read:
            return []
        last = self.read[-1]
        return [i for i in (last - 1, last + 1) if 0 <= i < len(self.chunks) and i not in self.read]


@register("agentic")
class AgenticRecipe:
    """max_steps: actions before the walk must answer; k: hits per search; retriever: for the search action."""

    name = "agentic"

    def __init__(self, max_steps: int = 8, k: int = 4, retriever: str = "bm25", chunk_tokens: int = 384, selector: EvidenceSelector | None = None) -> None:
        self.max_steps, self.k, self.retriever, self.chunk_tokens = max_steps, k, retriever, chunk_tokens
        self.selector = selector or EvidenceSelector()

    def _menu(self, state: _State, facts: Facts) -> list[str]:
        """The actions that can make progress now; the controller's suggested step comes first."""
        menu = []
        if state.unread_results():
            menu.append("read: read the next search result")
        if state.unread_neighbours():
            menu.append("around: read the text just before and after the last part read")
        menu.append("search: search the document with new keywords")
        menu.append("answer: answer the question now")
        suggested = self._default(state, facts)
        return sorted(menu, key=lambda m: m.split(":")[0] != suggested)

    def _default(self, state: _State, facts: Facts) -> str:
        if facts:
            return "answer"
        if state.unread_results():
            return "read"
        return "around" if state.unread_neighbours() else "search"

    def _choose(self, ctx: RunContext, state: _State, facts: Facts, question: str) -> str:
        menu = self._menu(state, facts)
        prompt = action_prompt(question, [f.text for f in facts.best(3)], state.observation, menu)
        [reply] = ctx.generate([prompt], SamplingParams(max_new_tokens=8), step="agent:choose")
        text = reply.text.strip().lower()
        match = re.search(r"\d+", text)
        action = None
        if match and 1 <= int(match.group()) <= len(menu):
            action = menu[int(match.group()) - 1].split(":")[0]
        else:
            action = next((a for a in ACTIONS if text.startswith(a)), None)
        why = "model's choice"
        if action is None:
            action, why = self._default(state, facts), "the model's reply named no action; took the default step"
        elif action == "answer" and not facts and (state.unread_results() or state.unread_neighbours()):
            action, why = self._default(state, facts), "refused to answer with no verified fact while unread text remains"
        elif action == "search" and len(state.queries) >= 3:
            action, why = self._default(state, facts), "three searches already made; took the default step"
        ctx.trace.add("agent:action", action=action, why=why, reply=reply.text[:30], menu=[m.split(":")[0] for m in menu])
        return action

    def _search(self, ctx: RunContext, index: ChunkIndex, state: _State, question: str, first: bool) -> None:
        prompt = query_prompt(question)
        if not first:
            prompt[-1].content += f"\nThese keywords found nothing: {'; '.join(state.queries)}. Use different words."
        [reply] = ctx.generate([prompt], SamplingParams(max_new_tokens=16, stop=["\n"]), step="agent:keywords")
        keywords = reply.text.strip().strip('"')[:120]
        state.queries.append(keywords)
        # The question itself stays in the query: the model's keywords add to it, never replace it.
        hits = index.search(f"{question} {keywords}", self.k + len(state.read))
        fresh = [i for i, _ in hits if i not in state.read and i not in state.results]
        state.results = fresh + [i for i in state.results if i not in fresh]
        state.observation = f"searched for '{keywords}': {len(fresh)} new results"
        ctx.trace.add("agent:search", keywords=keywords, results=fresh)

    def _read(self, ctx: RunContext, positions: list[int], state: _State, documents: Sequence[Document], question: str, facts: Facts) -> None:
        found = self.selector.select(ctx, state.pool, documents, question, positions=positions, step="agent:read", parts=positions)
        state.read += positions
        new = facts.add(found)
        state.observation = f"read part {', '.join(str(p) for p in positions)}: " + ("found a sentence that answers" if new else "nothing relevant")

    def run(self, ctx: RunContext, documents: Sequence[Document], question: str) -> Answer:
        room = window_room(ctx, extract_prompt("", question), EXTRACT_TOKENS)
        chunks = fit_chunks(ctx, documents, room, self.chunk_tokens)
        index = ChunkIndex(self.retriever, chunks)
        state, facts = _State(chunks=chunks, pool=self.selector.pool(chunks)), Facts()
        try:
            self._search(ctx, index, state, question, first=True)
            for _ in range(self.max_steps):
                action = self._choose(ctx, state, facts, question)
                if action == "answer":
                    break
                if action == "search":
                    self._search(ctx, index, state, question, first=False)
                elif action == "read" and state.unread_results():
                    self._read(ctx, state.unread_results()[:1], state, documents, question, facts)
                elif action == "around" and state.unread_neighbours():
                    self._read(ctx, state.unread_neighbours(), state, documents, question, facts)
            else:
                ctx.trace.add("agent:stop", why=f"step limit {self.max_steps} reached")
            follow_chain(
                ctx, self.selector, state.pool, documents, question, facts,
                max_hops=ctx.budget.max_hops,
                fetch=lambda query: [i for i, _ in index.search(query, self.k)],
            )
        except BudgetExhausted as exc:
            return partial_answer(ctx, self.name, question, facts, exc, len(state.read), len(chunks))
        return answer_from_facts(ctx, self.name, documents, question, facts)
