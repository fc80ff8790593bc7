"""Build ctxagent/evaluation/data/squad.jsonl.gz: SQuAD 2.0 questions over whole Wikipedia articles.

SQuAD 2.0 (Rajpurkar, Jia and Liang, ACL 2018; rajpurkar.github.io/SQuAD-explorer, CC BY-SA 4.0)
asks crowd-written questions about Wikipedia paragraphs. Here a question is asked of its whole
article (every paragraph SQuAD kept for that title, in order, joined by blank lines), so finding
the paragraph is part of the task, and long documents are made by adding other articles.

The official dev file (4.4 MB) is over the size the offline GitHub mirror here keeps, so this reads
the copy of Stanford CS224n's SQuAD 2.0 split in github.com/chrischute/squad (data/dev-v2.0.json:
half of the official dev set, 16 articles, question ids re-hashed, text and answers unchanged;
data/test-v2.0.json: the other half, 20 articles, answers withheld). Kept:

- every article's text, dev and test alike (test articles serve only as other articles to pad with);
- from each dev article, QUESTIONS_PER_ARTICLE answerable questions (never an `is_impossible` one)
  whose answers are at most MAX_ANSWER_WORDS words, taken from paragraphs spread evenly through the
  article (the first such question of the paragraph nearest 1/6, 1/2 and 5/6 of the way);
- every answer's offset in the article text (checked: text[start:start+len(answer)] == answer) and
  the gold paragraph's span, for evidence recall and for reading the gold neighbourhood.

    git -C /path/to/chrischute/squad show HEAD:data/dev-v2.0.json > squad_dev.json
    git -C /path/to/chrischute/squad show HEAD:data/test-v2.0.json > squad_test.json
    python tools/extract_squad.py squad_dev.json squad_test.json ctxagent/evaluation/data/squad.jsonl.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

QUESTIONS_PER_ARTICLE = 3
MAX_ANSWER_WORDS = 5
SEPARATOR = "\n\n"


def article_text(article: dict) -> tuple[str, list[int]]:
    """The article's paragraphs joined by blank lines, and where each paragraph starts."""
    starts, pieces, at = [], [], 0
    for paragraph in article["paragraphs"]:
        starts.append(at)
        pieces.append(paragraph["context"])
        at += len(paragraph["context"]) + len(SEPARATOR)
    return SEPARATOR.join(pieces), starts


def usable(qa: dict, context: str) -> bool:
    if qa.get("is_impossible") or not qa.get("answers"):
        return False
    first = qa["answers"][0]
    if len(first["text"].split()) > MAX_ANSWER_WORDS:
        return False
    return all(context[a["answer_start"] : a["answer_start"] + len(a["text"])] == a["text"] for a in qa["answers"])


def pick_questions(article: dict, text: str, starts: list[int]) -> list[dict]:
    paragraphs = article["paragraphs"]
    picked: list[dict] = []
    taken: set[int] = set()
    for share in [(2 * i + 1) / (2 * QUESTIONS_PER_ARTICLE) for i in range(QUESTIONS_PER_ARTICLE)]:
        order = sorted(range(len(paragraphs)), key=lambda p: abs(p - share * (len(paragraphs) - 1)))
        for p in order:
            if p in taken:
                continue
            context = paragraphs[p]["context"]
            qa = next((q for q in paragraphs[p]["qas"] if usable(q, context)), None)
            if qa is None:
                continue
            taken.add(p)
            answers, offsets = [], []
            for a in qa["answers"]:
                if a["text"] not in answers:
                    answers.append(a["text"])
                    offsets.append(starts[p] + a["answer_start"])
            for answer, start in zip(answers, offsets):
                assert text[start : start + len(answer)] == answer, (article["title"], qa["id"])
            picked.append(
                {
                    "id": f"squad-{qa['id']}",
                    "question": qa["question"].strip(),
                    "answers": answers,
                    "answer_starts": offsets,
                    "paragraph": [starts[p], starts[p] + len(context)],
                }
            )
            break
    return sorted(picked, key=lambda q: q["paragraph"][0])


def main(dev: str, test: str, target: str) -> None:
    rows = []
    for split, path in (("dev", dev), ("test", test)):
        for article in json.loads(Path(path).read_text(encoding="utf-8"))["data"]:
            text, starts = article_text(article)
            questions = pick_questions(article, text, starts) if split == "dev" else []
            rows.append({"title": article["title"].replace("_", " "), "split": split, "text": text, "questions": questions})
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    with gzip.GzipFile(target, "wb", mtime=0) as out:  # mtime 0: the same input gives the same bytes
        out.write(payload)
    n = sum(len(r["questions"]) for r in rows)
    print(f"{len(rows)} articles ({sum(r['split'] == 'dev' for r in rows)} with questions), {n} questions, {len(payload)} bytes of text -> {target}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
