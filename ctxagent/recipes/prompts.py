"""Prompt wording shared by recipes, kept in one place so it can be tuned once.

Small local models follow short, literal instructions best; keep these plain.
SmolLM2-135M copies a sentence from its input far more reliably than it reasons
about it, so the long-document recipes ask it to *copy* the sentence that answers
(checked against the source afterwards, see quotes.py) and answer only from those
verified sentences. The question is repeated before and after the text so it stays
in view however long the text is.
"""

from __future__ import annotations

from typing import Sequence

from ctxagent.engines.base import Message

ANSWER_SYSTEM = "You answer questions about a document. Use only facts stated in the document. Answer in one short sentence."

# The word the model is told to reply when a text does not answer; parsing accepts its variants.
NONE = "NONE"


def answer_prompt(context: str, question: str) -> list[Message]:
    return [
        Message("system", ANSWER_SYSTEM),
        Message("user", f"Document:\n{context}\n\nQuestion: {question}"),
    ]


def document_block(doc_id: str, text: str, many: bool) -> str:
    """A document's text, labelled with its id only when several documents share a prompt."""
    return f"[{doc_id}]\n{text}" if many else text


def extract_prompt(text: str, question: str, notes: Sequence[str] = ()) -> list[Message]:
    """Per-chunk extraction: copy the sentence that answers, or NONE.

    `notes` are verified sentences found earlier (recurrent reading); they are shown
    so the model can connect facts across chunks, but it is asked to copy from the text.
    """
    noted = "".join(f"- {n}\n" for n in notes)
    notes_block = f"Notes from earlier parts:\n{noted}\n" if notes else ""
    return [
        Message(
            "user",
            f"Question: {question}\n\n{notes_block}Text:\n{text}\n\n"
            f"Does the text above state the answer to this question: {question}\n"
            f"If yes, copy the sentence from the text that states it. If no, reply {NONE}.",
        )
    ]


# The last line of a facts answer names the facts it used; reading.parse_reply reads it (and looser forms).
FACTS_USED = "Facts used:"


def facts_answer_prompt(facts: Sequence[str], question: str) -> list[Message]:
    """The reduce step: answer from numbered verified sentences only, and say which were used
    (those become the citations, and the answer's numbers, dates and names are checked against them)."""
    listed = "\n".join(f"[{i}] {f}" for i, f in enumerate(facts, 1))
    return [
        Message("system", ANSWER_SYSTEM),
        Message(
            "user",
            f"Facts:\n{listed}\n\nQuestion: {question}\nAnswer using the facts above. "
            f"Then, on a new line, write {FACTS_USED} and the numbers of the facts you used.",
        ),
    ]


def summary_prompt(text: str) -> list[Message]:
    """A node of the memory tree: a short summary that keeps names, numbers and unusual facts,
    because those are what questions ask about and what navigation must find again."""
    return [
        Message(
            "user",
            f"Text:\n{text}\n\nSummarize the text above in two sentences. Keep names, numbers and any unusual fact.",
        )
    ]


def choose_prompt(summaries: Sequence[str], question: str) -> list[Message]:
    """Tree navigation: pick the numbered section most likely to hold the answer."""
    listed = "\n".join(f"{i}. {s}" for i, s in enumerate(summaries, 1))
    return [
        Message(
            "user",
            f"Question: {question}\n\nSections:\n{listed}\n\n"
            f"Which section most likely contains the answer to the question: {question}\nReply with the section number only.",
        )
    ]


def action_prompt(question: str, notes: Sequence[str], observation: str, menu: Sequence[str]) -> list[Message]:
    """The agentic recipe's policy step: choose one action from a short numbered menu."""
    noted = "".join(f"- {n}\n" for n in notes) or "(none yet)\n"
    listed = "\n".join(f"{i}. {m}" for i, m in enumerate(menu, 1))
    return [
        Message(
            "user",
            f"Question: {question}\nFacts found so far:\n{noted}Last step: {observation}\n\n"
            f"You are looking for the answer to the question in a long document. Pick the next step:\n{listed}\n\n"
            "Reply with the number of the step, like 1 or 2.",
        )
    ]


def query_prompt(question: str) -> list[Message]:
    """The agentic recipe's first move: the model writes its own search keywords."""
    return [Message("user", f"Question: {question}\n\nWrite a few search keywords to find the answer in a long document. Reply with the keywords only.")]
