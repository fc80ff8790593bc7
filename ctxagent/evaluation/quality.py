"""QuALITY: real multiple-choice questions over whole short stories, bundled so eval runs offline.

QuALITY (Pang et al., NAACL 2022, CC BY 4.0) questions were written by people who read the
whole story, and only half can be answered by skimming, so they test reading rather than
lookup. data/quality.jsonl holds 12 public-domain Project Gutenberg stories from its dev
set with their 146 questions (data/QUALITY.md says where from and how it was cut).

A `quality` task of length L hides one whole story (about 6K tokens) between Austen
paragraphs to reach L tokens; a length shorter than every story has no quality task.
QuALITY marks no evidence spans, so these tasks have no gold spans and no evidence recall.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache

from ctxagent.errors import InputError
from ctxagent.evaluation.haystack import SEPARATOR, CountTokens, data_path, filler

LETTERS = "ABCD"
SOURCE = "QuALITY v1.0 dev (CC BY 4.0), Project Gutenberg stories"


@dataclass(frozen=True)
class QualityQuestion:
    question: str
    options: tuple[str, ...]
    gold: int  # index into options


@dataclass(frozen=True)
class QualityStory:
    id: str
    title: str
    article: str
    questions: tuple[QualityQuestion, ...]


@lru_cache(maxsize=None)
def quality_stories() -> tuple[QualityStory, ...]:
    """The bundled stories with their questions, in file order."""
    stories = []
    for line in data_path("quality.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        questions = tuple(QualityQuestion(q["question"], tuple(q["options"]), int(q["gold"])) for q in row["questions"])
        stories.append(QualityStory(row["id"], row["title"], row["article"], questions))
    return tuple(stories)


_story_tokens: dict[tuple[str, int], int] = {}


def story_tokens(story: QualityStory, count_tokens: CountTokens) -> int:
    key = (story.id, id(count_tokens))
    if key not in _story_tokens:
        _story_tokens[key] = count_tokens(story.article)
    return _story_tokens[key]


def question_text(q: QualityQuestion) -> str:
    listed = " ".join(f"({letter}) {option}" for letter, option in zip(LETTERS, q.options))
    return f"{q.question} {listed} Answer with the letter of the right option."


@dataclass
class QualityPick:
    """One story and question placed in a document of the requested length."""

    story: QualityStory
    question: QualityQuestion
    context: str
    article_start: int
    tokens: int


def quality_document(length: int, count_tokens: CountTokens, rng: random.Random) -> QualityPick:
    """A story that fits in `length` tokens, with Austen filler around it, and one of its questions."""
    fitting = [s for s in quality_stories() if story_tokens(s, count_tokens) + 16 <= length]
    if not fitting:
        shortest = min(story_tokens(s, count_tokens) for s in quality_stories())
        raise InputError(f"length {length} is shorter than every bundled QuALITY story (the shortest is {shortest} tokens); use a length of at least {shortest + 16}")
    story = rng.choice(fitting)
    question = rng.choice(story.questions)
    target = length - story_tokens(story, count_tokens) - 2
    fill_seed = rng.random()
    for _ in range(6):  # measure, and shrink the filler until the whole fits
        fill_rng = random.Random(fill_seed)
        paras, _, _ = filler(count_tokens, max(0, target), fill_rng) if target > 8 else ([], [], "")
        texts = [" ".join(p) for p in paras]
        cut = fill_rng.randrange(len(texts) + 1)
        before, after = texts[:cut], texts[cut:]
        context = SEPARATOR.join([*before, story.article, *after])
        tokens = count_tokens(context)
        if tokens <= length:
            break
        target -= tokens - length + 2
    start = len(SEPARATOR.join(before)) + (len(SEPARATOR) if before else 0)
    return QualityPick(story, question, context, start, tokens)
