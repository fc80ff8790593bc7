"""Build ctxagent/evaluation/data/quality.jsonl: QuALITY questions over public-domain short stories.

QuALITY (Pang et al., NAACL 2022; github.com/nyu-mll/quality, CC BY 4.0) asks multiple-choice
questions written by people who read the whole article. Its own data files are stored
with Git LFS-like large-file hosting and were not reachable here, so this script reads the
15 QuALITY dev articles that L-Eval (github.com/OpenLMLab/LEval,
LEval-data/Closed-ended-tasks/quality.jsonl) redistributes with their original questions,
and keeps:

- only the Project Gutenberg stories (their transcriber's notes: no US copyright renewal),
  leaving out the Slate magazine articles;
- only QuALITY's own questions, leaving out the counting questions L-Eval added
  ("How many sentences ...", "longest dialogue", "named entities").

Whitespace from QuALITY's HTML stripping is collapsed inside paragraphs; the words are unchanged.

    git -C /path/to/LEval show HEAD:LEval-data/Closed-ended-tasks/quality.jsonl > leval_quality.jsonl
    python tools/extract_quality.py leval_quality.jsonl ctxagent/evaluation/data/quality.jsonl
"""

from __future__ import annotations

import json
import re
import string
import sys
from pathlib import Path

ADDED_BY_LEVAL = re.compile(r"how many (sentences|words|times)|longest|named entit", re.IGNORECASE)
OPTION = re.compile(r"\s*\(([ABCD])\)\s*")
BYLINE = re.compile(r"^\s*(.+?)\s+By\s+(.+?)\s{2,}", re.IGNORECASE)


def clean(article: str) -> str:
    article = re.sub(r"<!--.*?-->", "", article, flags=re.DOTALL)
    paragraphs = re.split(r"\n\s*\n", article)
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def parse_question(text: str, output: str) -> dict | None:
    parts = OPTION.split(text)
    if len(parts) != 9 or [parts[i] for i in (1, 3, 5, 7)] != list("ABCD"):
        return None
    gold = re.match(r"\s*\(([ABCD])\)", output)
    if not gold:
        return None
    return {
        "question": " ".join(parts[0].split()),
        "options": [" ".join(parts[i].split()) for i in (2, 4, 6, 8)],
        "gold": "ABCD".index(gold.group(1)),
    }


def main(source: str, target: str) -> None:
    out = []
    for n, line in enumerate(Path(source).read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        article = clean(row["input"])
        head = " ".join(article[:300].split())
        if not re.search(r"\b(By|BY)\s+[A-Z]", head[:160]):  # Slate articles carry no byline: not Gutenberg
            continue
        questions = [
            q
            for text, output in zip(row["instructions"], row["outputs"])
            if not ADDED_BY_LEVAL.search(text) and (q := parse_question(text, output))
        ]
        if questions:
            title = string.capwords(article.split("\n\n")[0].strip())
            out.append({"id": f"quality-{n:02d}", "title": title, "source": "Project Gutenberg via QuALITY dev", "article": article, "questions": questions})
    Path(target).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    print(f"{len(out)} stories, {sum(len(r['questions']) for r in out)} questions -> {target}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
