"""Questions a reader would ask of the bundled Persuasion excerpt (chapters 1-7, about 22K tokens),
asked through `ContextAgent.ask` with its defaults (recipe `auto`, the 60 s time budget), as a user
would. Written from the novel, not from the rules: lookups in other words, a chain (whose brother),
a count no sentence states as such, a year, yes/no questions whose answer is No.

Per answer: right (it contains a reference), its `basis`, recipe, seconds, citations and the last
note. The figure to watch, as in squad_passages.py, is the wrong answers marked `stated`.

    python benchmarks/persuasion_questions.py --model qwen2.5-coder-0.5b --name persuasion_questions_qwen05b
    python benchmarks/persuasion_questions.py --name persuasion_questions_smollm2     # the embedded model

Writes <out>/<name>.{jsonl,md,json}.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(ROOT)]

from benchmarks.asking import add_run_args, agent_for, by_basis  # noqa: E402
from benchmarks.provenance import finish, markdown_line, stamp, wilson  # noqa: E402

TEXT = ROOT / "ctxagent" / "evaluation" / "data" / "persuasion.txt"
# (question, references: the answer is right when it contains one, case aside)
QUESTIONS = [
    ("Where did Sir Walter Elliot live?", ["Kellynch"]),
    ("How many daughters did Sir Walter have?", ["three", "3"]),
    ("Who rented Kellynch Hall?", ["Croft"]),
    ("Was Anne's mother still alive when the story begins?", ["No"]),
    ("How many years before had Anne been engaged to Wentworth?", ["eight", "8", "seven", "7"]),
    ("Who is Mrs Croft's brother?", ["Wentworth"]),
    ("Which daughter married Charles Musgrove?", ["Mary"]),
    ("Who persuaded Anne to break off her engagement?", ["Lady Russell", "Russell"]),
    ("In what year did Lady Elliot die?", ["1800"]),
    ("How old was Elizabeth Elliot?", ["twenty-nine", "29"]),
    ("Where did the Elliots move when they left Kellynch?", ["Bath"]),
    ("Whose daughter is Mrs Clay?", ["Shepherd"]),
    ("When did Sir Walter's wife die?", ["1800"]),
    ("Did Anne marry Charles Musgrove?", ["No"]),
]
BASES = ("stated", "computed", "option", "quote", "none", "")


def is_right(answer: str, references: list[str]) -> bool:
    """A yes/no reference must open the answer ("No, ..."; "know" holds no "no"); any other must be in it."""
    if references in (["Yes"], ["No"]):
        return bool(re.match(rf"\W*{references[0]}\b", answer, re.IGNORECASE))
    return any(r.lower() in answer.lower() for r in references)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, "persuasion_questions")
    args = ap.parse_args()
    prov = stamp(args.allow_dirty)

    agent = agent_for(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out / f"{args.name}.jsonl", "w", encoding="utf-8") as log:
        for question, references in QUESTIONS:
            started = time.time()
            answer = agent.ask(TEXT, question)
            row = {"question": question, "references": references, "answer": answer.text, "basis": answer.basis, "recipe": answer.recipe,
                   "right": is_right(answer.text, references), "partial": answer.partial,
                   "citations": [c.quote for c in answer.citations], "note": answer.notes[-1] if answer.notes else "",
                   "seconds": round(time.time() - started, 1)}
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            print(f"{row['right']!s:5} {row['basis']:8} {row['recipe']:22} {row['seconds']:5.1f}s {question[:50]} -> {answer.text[:70]!r}", flush=True)
    prov = finish(prov)
    n, right = len(rows), sum(r["right"] for r in rows)
    lo, hi = wilson(right, n)
    table, counts = by_basis(rows, BASES)
    lines = [
        f"# Persuasion questions: what a reader asks ({args.model or 'the embedded model'})",
        "",
        f"{n} questions about the bundled Persuasion excerpt, through `ContextAgent.ask` with its defaults. Right = the answer "
        "contains a reference; basis = how it stands to its citations; partial = the time budget ran out first.",
        "",
        f"Right: {right}/{n} [{lo * n:.0f}-{hi * n:.0f}]; partial: {sum(r['partial'] for r in rows)}; seconds per question: "
        f"{sum(r['seconds'] for r in rows) / max(n, 1):.1f}.",
        "",
        *table,
        "",
        "| question | answer | basis | right |",
        "|---|---|---|---|",
        *[f"| {r['question']} | {r['answer'][:90].replace('|', '/').replace(chr(10), ' ')} | {r['basis']} | {'yes' if r['right'] else 'no'} |" for r in rows],
        "",
        markdown_line(prov),
    ]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / f"{args.name}.json").write_text(json.dumps({"provenance": prov, "model": args.model, "right": right, "n": n,
                                                          "by_basis": counts}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
