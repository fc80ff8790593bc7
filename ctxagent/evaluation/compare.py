"""Before/after: two eval runs side by side, per length x task kind x recipe, each naming its commit.

    python -m ctxagent.evaluation.compare docs/eval/before docs/eval/after > docs/eval/before_after.md

Reads each folder's summary.json (written by `ctxagent eval`; rebuild an old one with
`--report-only`), so the two runs are compared on the numbers their reports give. Cells
one run lacks show "–": compare like with like (the same --tasks file in both runs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ctxagent.errors import InputError


def _summary(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise InputError(f"{path} does not exist: run `ctxagent eval --out {folder}` (or --report-only on its results) first")
    return json.loads(path.read_text(encoding="utf-8"))


def _cell(row: dict[str, Any] | None) -> str:
    if not row:
        return "–"

    def fmt(value: float | None, percent: bool = False) -> str:
        return "–" if value is None else (f"{value:.0%}" if percent else f"{value:.2f}")

    return f"{fmt(row['accuracy'])} / {fmt(row['evidence_recall'])} / {fmt(row['unsupported_share'], True)} (n={row['questions']})"


def _who(summary: dict[str, Any]) -> str:
    block = summary.get("provenance") or {}
    return f"commit `{str(block.get('commit', 'unknown'))[:12]}`, {block.get('date', '?')}, load {block.get('load_start')} -> {block.get('load_end')}"


def compare(before: str | Path, after: str | Path) -> str:
    """A markdown table: accuracy / evidence recall / unsupported share before and after, per length x kind x recipe."""
    old, new = _summary(before), _summary(after)
    index_old = {(c["length"], c["kind"], c["recipe"]): c for c in old.get("cells", [])}
    index_new = {(c["length"], c["kind"], c["recipe"]): c for c in new.get("cells", [])}
    keys = sorted(set(index_old) | set(index_new), key=lambda k: (k[0], list(dict.fromkeys(x[1] for x in [*index_old, *index_new])).index(k[1]), k[2]))
    lines = [
        f"Before: {_who(old)}. After: {_who(new)}.",
        "",
        "Each cell: accuracy / evidence recall / share of answers with unsupported specifics (n = questions).",
        "",
        "| tokens | kind | recipe | before | after |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {length} | {kind} | {recipe} | {_cell(index_old.get((length, kind, recipe)))} | {_cell(index_new.get((length, kind, recipe)))} |" for length, kind, recipe in keys]
    by_recipe_old = {r["recipe"]: r for r in old.get("recipes", [])}
    by_recipe_new = {r["recipe"]: r for r in new.get("recipes", [])}
    lines += ["", "| recipe | before | after |", "|---|---|---|"]
    for recipe in dict.fromkeys([*by_recipe_old, *by_recipe_new]):
        lines.append(f"| {recipe} | {_cell(by_recipe_old.get(recipe))} | {_cell(by_recipe_new.get(recipe))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m ctxagent.evaluation.compare BEFORE_DIR AFTER_DIR", file=sys.stderr)
        return 2
    sys.stdout.write(compare(*args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
