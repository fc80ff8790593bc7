"""Is an answer only an answer? Prompt text carried back into a reply, found and cut off.

Small models often go on past their answer and write the prompt again: "42\\nQuestion:
How many ...?\\nAnswer using the facts above. Then, on a new line, write Facts used: ...".
Measured on 43 real questions (issue 25), 6 of SmolLM2's answers and 5 of
Qwen2.5-Coder-0.5B's carried such text. Two defences, both here so that the recipes, the
server and the evaluation (which counts violations with `scaffolding_in`) agree on what
counts as scaffolding:

- `ANSWER_STOPS`: stop strings for every answer step, so generation ends where the prompt
  would start again (cheaper too: no tokens are spent writing the prompt back);
- `strip_scaffolding`: what an engine that ignores stop strings still wrote is cut off,
  and a leading "Answer:" label dropped; `is_clean_answer` says whether any is left.

A third: the evidence the prompt showed, recited after the answer. Models run on past
their answer into the next sentences of the facts they were shown ("The European
Commission is the main executive body of the European Union. The second main legislative
body is the Council, ..."; SmolLM2 and Qwen2.5-Coder-0.5B both, issue 25), which adds
nothing the citations do not give and lets a containment metric credit text the model
never chose. `stop_at_recital` cuts the answer before the first *later* sentence that is
one of the shown sentences copied (it opens as a shown sentence does and nearly all its
word pairs are shown text); the first sentence always stays, so a quote as the answer is
kept, and sentences the model wrote itself, however many, are never cut.

A fourth, `drop_debris`: what a model leaves after a complete answer that says nothing -- a
list of bare values ("... died. 1803\n2. 1804\n3. 1650", Qwen2.5-Coder-0.5B, issue 25) or an
unfinished fragment ending on a function word ("... is the European Commission. The number of").
`cut_after_answer` applies both, as every answer step does.

The markers are the frames of ctxagent's own prompts (recipes/prompts.py; a test renders
every prompt there and checks that each is recognised here) and chat-template tokens. A
marker must be a label at the start of a line or a whole instruction phrase, so an answer
that merely mentions "the question" or "facts" is not cut.
"""

from __future__ import annotations

import re
from typing import Sequence

from ctxagent.chunking import TITLES

# Labels that open a block of our prompts; at the start of a line in a reply they mean the
# model is writing the prompt again ("Question: ...", "Facts:\n[1] ...").
_LABELS = ("question", "questions", "facts", "facts used", "fact used", "sources used", "document", "text", "context", "notes from earlier parts", "sections", "last step", "facts found so far")
# Instruction phrases of our prompts (lower case, whitespace-normalised), found anywhere in a reply.
_PHRASES = (
    "answer using the facts above",
    "on a new line, write",
    "facts used:",
    "the numbers of the facts you used",
    "the numbers of the facts used",
    "use only facts stated in the document",
    "you answer questions about a document",
    "answer in one short sentence",
    "does the text above state the answer",
    "copy the sentence from the text",
    "if no, reply none",
    "summarize the text above",
    "which section most likely contains the answer",
    "reply with the section number",
    "pick the next step",
    "reply with the number of the step",
    "write a few search keywords",
)
# Chat-template tokens of the model families we run (ChatML, Llama 3, Gemma, Phi).
_SPECIAL = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|assistant|user|system|end)\|>|<(?:start|end)_of_turn>")
_LABEL_LINE = re.compile(r"(?im)^[^\S\n]*[#*>\-\s]*(?:" + "|".join(re.escape(label) for label in _LABELS) + r")[^\S\n]*[:：]")
_PHRASE = re.compile("|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in _PHRASES), re.IGNORECASE)
_ROLE_LINE = re.compile(r"(?im)^[^\S\n]*(?:assistant|user|system)[^\S\n]*$")
_LEADING_TURN = re.compile(r"^(?:\s*(?:" + _SPECIAL.pattern + r")[^\S\n]*(?:assistant|model)?[^\S\n]*\n?)+", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"(?im)^[^\S\n]*[*#]*\s*(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[*]*\s*[:：]\s*")
_ANSWER_LABEL_ANYWHERE = re.compile(r"(?i)\b(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[*]*\s*[:：]\s*")
_CONTENT = re.compile(r"[A-Za-z0-9]{2,}")
_EMPTY_WORDS = frozenset("the a an so and then here this is it".split())

# Stop strings for an answer step: where the prompt would begin again. "Facts used:" is not one:
# the facts answer prompt asks for it, and reading.parse_reply reads the facts it names.
ANSWER_STOPS = ["\nQuestion:", "\nFacts:", "\nDocument:", "\nText:", "\nContext:", "Answer using the facts above", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]


def scaffolding_in(text: str) -> list[str]:
    """The pieces of prompt text in `text` (empty for a clean answer), as found, for reports."""
    found = [m.group().strip() for m in _LABEL_LINE.finditer(text)]
    found += [m.group() for m in _PHRASE.finditer(text)]
    found += [m.group() for m in _SPECIAL.finditer(text)]
    found += [m.group().strip() for m in _ROLE_LINE.finditer(text)]
    return found


def is_clean_answer(text: str) -> bool:
    """True when `text` carries no prompt text: no label line, instruction phrase or template token."""
    return not scaffolding_in(text)


def _first_marker(text: str) -> re.Match[str] | None:
    hits = [m for pattern in (_LABEL_LINE, _PHRASE, _SPECIAL, _ROLE_LINE) if (m := pattern.search(text))]
    return min(hits, key=lambda m: m.start(), default=None)


def _has_content(text: str) -> bool:
    return any(w.lower() not in _EMPTY_WORDS for w in _CONTENT.findall(text))


def strip_scaffolding(text: str) -> str:
    """`text` cut before the first piece of prompt text, with a leading "Answer:" label dropped.

    When the reply *opens* with prompt text ("Question: ...?\\nAnswer: Paris", "The facts used: ...
    The answer is: Paris"), the answer is what follows its last "Answer:" label, cut the same way;
    if there is none, nothing is left.
    """
    text = _LEADING_TURN.sub("", text.strip())
    marker = _first_marker(text)
    if marker is not None and not _has_content(text[: marker.start()]):
        labels = [m for m in _ANSWER_LABEL_ANYWHERE.finditer(text) if m.start() >= marker.start()]
        text = text[labels[-1].end() :] if labels else ""
        marker = _first_marker(text)
    if marker is not None:
        text = text[: marker.start()]
    text = _ANSWER_LABEL.sub("", text, count=1) if _ANSWER_LABEL.match(text) else text
    return text.strip().rstrip("([{").strip()


# -- evidence recited after the answer ------------------------------------------------------------
# A later sentence recites the evidence when its first RECITAL_OPENING words open a shown sentence
# and at least RECITAL_SHARE of its word pairs are pairs of the shown text (a copy cut short by the
# token limit still is one); sentences shorter than RECITAL_WORDS are never judged.
RECITAL_OPENING = 4
RECITAL_SHARE = 0.8
RECITAL_WORDS = 6
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)\]]*[^\S\n]+(?=[\"'“(\[]?[A-Z0-9])|\n+")
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_WORDS = re.compile(r"[a-z0-9]+")


# A title or an initial before its name (chunking.TITLES): its full stop ends no sentence.
_TITLE_END = re.compile(r"(?:^|\s)(?:[A-Z]|" + "|".join(TITLES) + r")\.$")


def _sentence_starts(text: str) -> list[int]:
    """Where each sentence or line of `text` starts; a list item's number ("1. ") opens its sentence,
    and a title or initial ("Mr.", "Dr.", "J.") ends none."""
    starts = [0]
    for m in _SENTENCE_BREAK.finditer(text):
        before = text[starts[-1] : m.start()]
        if re.fullmatch(r"\s*\d{1,2}[.)]", before) or (m.group().strip() == "" and _TITLE_END.search(before)):
            continue
        starts.append(m.end())
    return starts


def _sentence_words(text: str) -> list[str]:
    """The sentence's words, lower-cased, a word the model stuttered ("The The Norman") taken once."""
    words = _WORDS.findall(_LIST_MARK.sub("", text).lower())
    return [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]


# Words a model puts before a sentence it copies ("And Be it known then, that Sir Walter ...", Qwen 0.5B on Persuasion).
_CONNECTIVES = frozenset("and also but so then plus".split())


def stop_at_recital(text: str, shown: Sequence[str]) -> str:
    """`text` cut before its first sentence, after the first, that copies one of the `shown` passages'
    sentences (the evidence the answer step was given); a lone list marker left on the answer ("1. ")
    is dropped. Unchanged when no later sentence is a copy."""
    starts = _sentence_starts(text)
    if len(starts) < 2 or not shown:
        return text
    openings: set[tuple[str, ...]] = set()
    pairs: set[tuple[str, str]] = set()
    for passage in shown:
        bounds = _sentence_starts(passage) + [len(passage)]
        for a, b in zip(bounds, bounds[1:]):
            words = _sentence_words(passage[a:b])
            openings.add(tuple(words[:RECITAL_OPENING]))
            pairs.update(zip(words, words[1:]))
    ends = starts[1:] + [len(text)]
    for start, end in zip(starts[1:], ends[1:]):
        words = _sentence_words(text[start:end])
        if words and words[0] in _CONNECTIVES:  # "And Be it known then, ...": a recital all the same
            words = words[1:]
        if len(words) < RECITAL_WORDS or tuple(words[:RECITAL_OPENING]) not in openings:
            continue
        own = list(zip(words, words[1:]))
        if sum(p in pairs for p in own) >= RECITAL_SHARE * len(own):
            kept = text[:start].rstrip()
            return _LIST_MARK.sub("", kept, count=1) if len(_LIST_MARK.findall(kept)) <= 1 and re.match(r"\s*1[.)]\s", kept) else kept
    return text


# -- debris after the answer ------------------------------------------------------------------------
_COMPLETE = re.compile(r"[.!?][\"'”’)\]]*\s*$")
_LETTER = re.compile(r"[A-Za-z]")
_DANGLING = re.compile(r"\b(?:of|the|a|an|and|or|to|in|on|for|with|by|at|from|is|was|are|were|that|which|as)\W*$", re.IGNORECASE)


def drop_debris(text: str) -> str:
    """`text` without the debris after a complete first sentence: a tail of sentences or list items
    that hold no word (bare values: "1803\n2. 1804\n3. 1650"), or a last fragment of fewer than
    RECITAL_WORDS words that ends unfinished, on a function word ("The number of"). An answer whose
    first sentence is not complete ("The dates are:" then a list) is left alone: the list is the answer."""
    starts = _sentence_starts(text)
    if len(starts) < 2 or not _COMPLETE.search(text[: starts[1]]):
        return text
    bounds = starts + [len(text)]
    sentences = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    cut = len(sentences)
    while cut > 1 and not _LETTER.search(sentences[cut - 1]):
        cut -= 1
    last = sentences[cut - 1] if cut > 1 else ""
    if last and not _COMPLETE.search(last) and len(_sentence_words(last)) < RECITAL_WORDS and _DANGLING.search(last):
        cut -= 1
    return text if cut == len(sentences) else text[: starts[cut]].rstrip()


def stop_at_repeat(text: str) -> str:
    """`text` cut before its first sentence that repeats an earlier one word for word: a model caught
    in a loop (SmolLM2 on SQuAD wrote the same two sentences four times, then stopped mid-way)."""
    starts = _sentence_starts(text)
    bounds = starts + [len(text)]
    seen: set[tuple[str, ...]] = set()
    for a, b in zip(bounds, bounds[1:]):
        words = tuple(_sentence_words(text[a:b]))
        if len(words) >= 3 and words in seen:
            return text[:a].rstrip()
        seen.add(words)
    return text


def cut_after_answer(text: str, shown: Sequence[str]) -> str:
    """`text` ending at its answer: the `shown` evidence recited after it (`stop_at_recital`), a loop
    (`stop_at_repeat`) and the debris left after those (`drop_debris`) cut off. The one call every
    answer step makes."""
    return drop_debris(stop_at_repeat(stop_at_recital(text, shown)))
