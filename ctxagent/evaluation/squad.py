"""SQuAD 2.0 over whole Wikipedia articles: real questions nobody here wrote, bundled for offline runs.

data/squad.jsonl.gz holds 36 Wikipedia articles from SQuAD 2.0 (CC BY-SA 4.0; data/SQUAD.md says
where from) and 48 answerable questions over 16 of them, each with its answers' offsets in the
article text and the gold paragraph's span. A `squad` task of length L asks one question of
a document of at most L tokens:

- when the whole gold article fits, the document is that article among other articles
  (whole ones, the last cut at a paragraph), in a seeded order: a 128K-token document is the
  gold article in about 30 others;
- when it does not, the document is the run of the article's paragraphs around the gold one
  that fits (so a 2K-token task is still one real passage of the article).

The same seed asks the same questions at every length (sample s takes the s-th question of one
seeded order of all 48), so runs at different lengths compare recipes on the same questions.
The gold span is the first answer's place in the gold paragraph: evidence recall asks whether
what the model read holds it. `metadata["paragraph"]` is the gold paragraph's [start, end) in the
context, for reading the gold neighbourhood alone (the oracle of benchmarks/ab_direct.py).
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from functools import lru_cache

from typing import Any

from ctxagent.errors import InputError
from ctxagent.evaluation.haystack import SEPARATOR, CountTokens, data_path

SOURCE = "SQuAD 2.0 dev (CC BY-SA 4.0), Wikipedia articles"
MIN_LENGTH = 256  # below this even the gold paragraph alone may not fit


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]  # offsets in the article text, one per answer
    paragraph: tuple[int, int]  # the gold paragraph's [start, end) in the article text


@dataclass(frozen=True)
class SquadArticle:
    title: str
    text: str
    questions: tuple[SquadQuestion, ...]

    def paragraphs(self) -> list[tuple[int, int]]:
        """[start, end) of every paragraph of the text."""
        spans, at = [], 0
        for piece in self.text.split(SEPARATOR):
            spans.append((at, at + len(piece)))
            at += len(piece) + len(SEPARATOR)
        return spans


@lru_cache(maxsize=None)
def squad_articles() -> tuple[SquadArticle, ...]:
    """Every bundled article, in file order (those with questions first)."""
    with gzip.open(str(data_path("squad.jsonl.gz")), "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    articles = []
    for row in rows:
        questions = tuple(
            SquadQuestion(q["id"], q["question"], tuple(q["answers"]), tuple(q["answer_starts"]), tuple(q["paragraph"]))  # type: ignore[arg-type]
            for q in row["questions"]
        )
        articles.append(SquadArticle(row["title"], row["text"], questions))
    return tuple(articles)


def squad_questions() -> list[tuple[SquadArticle, SquadQuestion]]:
    return [(a, q) for a in squad_articles() for q in a.questions]


def question_for(seed: int, sample: int) -> tuple[SquadArticle, SquadQuestion]:
    """The sample-th question of one seeded order of all questions: the same at every length."""
    pairs = squad_questions()
    order = list(range(len(pairs)))
    random.Random(f"{seed}/squad-order").shuffle(order)
    return pairs[order[sample % len(order)]]


_tokens: dict[tuple[str, int], list[int]] = {}


def _paragraph_tokens(article: SquadArticle, count_tokens: CountTokens) -> list[int]:
    key = (article.title, id(count_tokens))
    if key not in _tokens:
        _tokens[key] = [count_tokens(article.text[s:e]) + 1 for s, e in article.paragraphs()]
    return _tokens[key]


@dataclass
class SquadPick:
    article: SquadArticle
    question: SquadQuestion
    context: str
    offset: int  # where the gold article's text (or the kept slice's first character) sits in the context
    cut: int  # the character of the article text at `offset` (0 unless the article was sliced)
    tokens: int


def _window(article: SquadArticle, gold: tuple[int, int], budget: int, count_tokens: CountTokens) -> tuple[int, int]:
    """[start, end) of the longest run of paragraphs around the gold one within `budget` tokens."""
    spans, counts = article.paragraphs(), _paragraph_tokens(article, count_tokens)
    g = next(i for i, (s, e) in enumerate(spans) if s <= gold[0] < e + len(SEPARATOR))
    lo = hi = g
    used = counts[g]
    grew = True
    while grew:
        grew = False
        for step in (-1, 1):  # alternate before and after, so the gold paragraph stays near the middle
            i = lo - 1 if step < 0 else hi + 1
            if 0 <= i < len(spans) and used + counts[i] <= budget:
                used += counts[i]
                lo, hi = (i, hi) if step < 0 else (lo, i)
                grew = True
    return spans[lo][0], spans[hi][1]


def squad_document(length: int, count_tokens: CountTokens, rng: random.Random, article: SquadArticle, question: SquadQuestion) -> SquadPick:
    """The question's article within `length` tokens: among other articles, or sliced around the gold paragraph."""
    if length < MIN_LENGTH:
        raise InputError(f"length {length} is too short for a squad task; use at least {MIN_LENGTH}")
    own = sum(_paragraph_tokens(article, count_tokens))
    fill_seed, where_seed = rng.random(), rng.random()  # drawn once, so shrinking keeps the same order
    target = length - 8
    for _ in range(8):  # measure, and shrink until the whole fits
        if own <= target:
            others = [a for a in squad_articles() if a.title != article.title]
            rng_fill = random.Random(fill_seed)
            rng_fill.shuffle(others)
            pieces, used = [], own
            for other in others:
                if used >= target:
                    break
                counts = _paragraph_tokens(other, count_tokens)
                keep = 0
                while keep < len(counts) and used + counts[keep] <= target:
                    used += counts[keep]
                    keep += 1
                if keep:
                    pieces.append(SEPARATOR.join(other.text.split(SEPARATOR)[:keep]))
                if keep < len(counts):
                    break
            where = random.Random(where_seed).randrange(len(pieces) + 1)
            before = SEPARATOR.join(pieces[:where])
            offset = len(before) + (len(SEPARATOR) if before else 0)
            context = SEPARATOR.join([*pieces[:where], article.text, *pieces[where:]])
            cut = 0
        else:
            start, end = _window(article, question.paragraph, target, count_tokens)
            context, offset, cut = article.text[start:end], 0, start
        tokens = count_tokens(context)
        if tokens <= length:
            return SquadPick(article, question, context, offset, cut, tokens)
        target -= tokens - length + 16
    raise InputError(f"could not fit a squad document into {length} tokens")  # pragma: no cover - the loop converges


def neighbourhood_task(task: Any, tokens: int, count_tokens: CountTokens) -> Any:
    """A `squad` task cut to its gold paragraph and the paragraphs around it, at most `tokens` long
    (the gold paragraph alone if it is longer): what reading directly can do when evidence
    selection is perfect, the oracle upper bound of benchmarks/ab_direct.py."""
    lo, hi = task.metadata["paragraph"]
    spans, at = [], 0
    for piece in task.context.split(SEPARATOR):
        spans.append((at, at + len(piece)))
        at += len(piece) + len(SEPARATOR)
    g = next(i for i, (s, e) in enumerate(spans) if s <= lo < e + len(SEPARATOR))
    first = last = g
    used = count_tokens(task.context[spans[g][0] : spans[g][1]])
    grew = True
    while grew:  # alternate before and after, so the gold paragraph stays near the middle
        grew = False
        for i in (first - 1, last + 1):
            if 0 <= i < len(spans):
                more = count_tokens(task.context[spans[i][0] : spans[i][1]]) + 1
                if used + more <= tokens:
                    used += more
                    first, last = min(first, i), max(last, i)
                    grew = True
    start, end = spans[first][0], spans[last][1]
    context = task.context[start:end]
    needles = [n.model_copy(update={"start": n.start - start}) for n in task.needles]
    metadata = {**task.metadata, "paragraph": [lo - start, hi - start], "neighbourhood_of": task.id}
    return task.model_copy(update={"id": f"{task.id}-oracle", "context": context, "tokens": count_tokens(context), "needles": needles, "metadata": metadata})
