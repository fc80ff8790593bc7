"""What the pipeline asserts on real questions it was not designed for: the bundled SQuAD 2.0
questions (48, over Wikipedia articles; ctxagent/evaluation/data/SQUAD.md), each asked of the
passage around its answer (the gold paragraph and `--pad` characters either side), through
`ContextAgent.ask` as a user would (recipe `auto`, which reads such a short text directly).

Per answer: whether it contains a reference answer, and its `basis` (how it stands to its
citations: stated, computed, option, quote, none). The figure to watch is the wrong answers
marked `stated`: an answer asserted as what its citations say, that is not the answer. A
grounding rule that turns one into the verified quote holding the answer moves it to
`quote`, right. Greedy decoding, so a rerun of the same code gives the same answers.

    python benchmarks/squad_passages.py --model qwen2.5-coder-0.5b --name squad_passages_qwen05b
    python benchmarks/squad_passages.py --name squad_passages_smollm2          # the embedded model
    python benchmarks/squad_passages.py --model qwen2.5-coder-0.5b --pad 4000 --recipe retrieve_then_reason --name squad_rtr_qwen05b

To measure the library at another commit with this script, put that checkout first on
PYTHONPATH: the results then name its commit (its ctxagent.provenance stamps them).
Writes <out>/<name>.{jsonl,md,json}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HERE = Path(__file__).resolve().parent
# This folder last (its kernels.py would shadow a package transformers imports), and the checkout
# after PYTHONPATH, so a checkout named there supplies ctxagent.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(ROOT)]

from benchmarks.asking import add_run_args, agent_for, by_basis  # noqa: E402
from benchmarks.provenance import finish, markdown_line, stamp, wilson  # noqa: E402

DATA = ROOT / "ctxagent" / "evaluation" / "data" / "squad.jsonl.gz"
BASES = ("stated", "computed", "option", "quote", "none")


def questions(pad: int) -> list[dict]:
    """Every bundled question with the text it is asked of: its paragraph and `pad` characters either side."""
    out = []
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        for line in f:
            article = json.loads(line)
            for q in article["questions"]:
                start, end = q["paragraph"]
                out.append({"title": article["title"], "question": q["question"], "answers": q["answers"],
                            "text": article["text"][max(0, start - pad) : end + pad]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, "squad_passages")
    ap.add_argument("--pad", type=int, default=1200, help="characters of the article kept either side of the answer's paragraph")
    ap.add_argument("--recipe", default=None, help="a recipe to use instead of `auto` (e.g. retrieve_then_reason: the long-document answer step on a short text)")
    args = ap.parse_args()
    prov = stamp(args.allow_dirty)

    from ctxagent.types import Document

    agent = agent_for(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out / f"{args.name}.jsonl", "w", encoding="utf-8") as log:
        for i, q in enumerate(questions(args.pad)):
            started = time.time()
            answer = agent.ask(Document(id=q["title"], text=q["text"]), q["question"], recipe=args.recipe)
            row = {"question": q["question"], "references": q["answers"], "answer": answer.text, "basis": answer.basis,
                   "recipe": answer.recipe, "right": any(r.lower() in answer.text.lower() for r in q["answers"]),
                   "citations": [c.quote for c in answer.citations], "seconds": round(time.time() - started, 1)}
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            print(f"{i + 1:>3} {row['right']!s:5} {row['basis']:8} {q['question'][:60]} -> {answer.text[:70]!r}", flush=True)
    write(rows, args, finish(prov))


def write(rows: list[dict], args: argparse.Namespace, prov: dict | None) -> None:
    n = len(rows)
    right = sum(r["right"] for r in rows)
    lo, hi = wilson(right, n)
    table, counts = by_basis(rows, BASES)
    lines = [
        f"# SQuAD passages: what the answers assert ({args.model or 'the embedded model'}, recipe {args.recipe or 'auto'})",
        "",
        f"{n} bundled SQuAD 2.0 questions, each asked of its paragraph and {args.pad} characters either side through "
        "`ContextAgent.ask`. Right = the answer contains a reference answer; basis = how it stands to its citations.",
        "",
        f"Right: {right}/{n} [{lo * n:.0f}-{hi * n:.0f}] (95% Wilson interval, in questions); seconds per question: "
        f"{sum(r['seconds'] for r in rows) / max(n, 1):.1f}.",
        "",
        *table,
        "",
        markdown_line(prov),
    ]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / f"{args.name}.json").write_text(json.dumps({"provenance": prov, "model": args.model, "recipe": args.recipe, "pad": args.pad, "right": right, "n": n,
                                                          "by_basis": counts}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
