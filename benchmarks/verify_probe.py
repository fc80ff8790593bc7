"""Can the model itself tell a right `stated` answer from a wrong one? A probe for a model-side
support check, run over the answers benchmarks/squad_passages.py recorded.

Grounding (ctxagent/grounding.py) is lexical: "Margaret's brother was Sybilla of Normandy" passes,
since every name in it is in the cited sentence ("whose elder brother Alexander I had married
Sybilla of Normandy"). A model-side check would ask the model, in one scoring call, whether the
cited sentences say the answer. This measures whether that call separates the answers the
reference marks right from those it marks wrong, before any rule is built on it: per prompt
form, the margin log p(yes) - log p(no) of every `stated` answer, and the AUC of that margin
(the chance that a random right answer scores above a random wrong one; 0.5 = no separation).

    python benchmarks/verify_probe.py benchmarks/results/squad_passages_qwen05b.jsonl --model qwen2.5-coder-0.5b --name verify_probe_qwen05b

Writes <out>/<name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(ROOT)]

from benchmarks.asking import add_run_args, agent_for  # noqa: E402
from benchmarks.provenance import finish, markdown_line, stamp  # noqa: E402

FORMS = {
    "correct": "{facts}\n\nQuestion: {question}\nProposed answer: {answer}\nIs the proposed answer correct according to the text above? Answer:",
    "says": "Text: {facts}\n\nQuestion: {question}\nAnswer: {answer}\n\nDoes the text say that this is the answer to the question (yes or no)?",
    # the same question as a chat turn, rendered with the model's template; the reply's first word is scored
    "chat": "Text:\n{facts}\n\nQuestion: {question}\nProposed answer: {answer}\n\nDoes the text support the proposed answer to the question? Reply yes or no.",
}


def margin(engine, context: str, chat: bool) -> float:
    """log p(yes) - log p(no) for the next word after `context`, either case."""
    if chat:
        from ctxagent.engines.base import prompt_text

        context = prompt_text(engine.tokenizer, context)
    words = ["Yes", "yes", "No", "no"] if chat else [" Yes", " yes", " No", " no"]
    scores = engine.score(words, [context] * 4)
    probs = [math.exp(sum(s.logprobs)) for s in scores]
    return math.log(probs[0] + probs[1]) - math.log(probs[2] + probs[3])


def auc(right: list[float], wrong: list[float]) -> float:
    pairs = [(r > w) + 0.5 * (r == w) for r in right for w in wrong]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("answers", type=Path, help="a squad_passages.py .jsonl")
    add_run_args(ap, "verify_probe")
    args = ap.parse_args()
    prov = stamp(args.allow_dirty)

    agent = agent_for(args.model)
    rows = [json.loads(line) for line in args.answers.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["basis"] == "stated" and r["citations"]]
    margins = {form: {True: [], False: []} for form in FORMS}
    for r in rows:
        facts = "\n".join(f"- {c}" for c in r["citations"])
        for form, text in FORMS.items():
            margins[form][r["right"]].append(margin(agent.engine, text.format(facts=facts, question=r["question"], answer=r["answer"]), form == "chat"))
    right, wrong = sum(r["right"] for r in rows), sum(not r["right"] for r in rows)
    lines = [
        f"# Can the model tell right `stated` answers from wrong ones? ({args.model or 'the embedded model'})",
        "",
        f"The `stated` answers of `{args.answers.name}` ({right} right, {wrong} wrong by the reference), each scored with "
        "its citations: margin = log p(yes) - log p(no). AUC = the chance a right answer's margin is above a wrong one's "
        "(0.5: no separation).",
        "",
        "| prompt form | AUC | right: median margin | wrong: median margin |",
        "|---|---:|---:|---:|",
    ]
    for form in FORMS:
        r_m, w_m = sorted(margins[form][True]), sorted(margins[form][False])
        lines.append(f"| {form} | {auc(r_m, w_m):.2f} | {r_m[len(r_m) // 2]:.2f} | {w_m[len(w_m) // 2]:.2f} |")
    prov = finish(prov)
    lines += ["", "Prompt forms: " + "; ".join(f"`{k}`: {v!r}" for k, v in FORMS.items()), "", markdown_line(prov)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / f"{args.name}.json").write_text(json.dumps({"provenance": prov, "model": args.model, "answers": args.answers.name,
                                                          "margins": {f: {str(k): v for k, v in m.items()} for f, m in margins.items()}}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
