"""Tables and plots from evaluation results: which recipe to trust, at what cost.

- a summary table per recipe (accuracy, tokens, engine calls, seconds per question);
- accuracy by document length and by task kind, per recipe (markdown);
- heatmap.png: accuracy by length x depth, one panel per recipe;
- frontier.png: accuracy against tokens spent per question, with the Pareto frontier.

matplotlib is optional (`pip install ctxagent[eval]`); without it the markdown
report is still written and says the plots were skipped.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from statistics import mean
from typing import Any, Callable, Iterable, Sequence

from ctxagent.evaluation.runner import Result
from ctxagent.evaluation.scoring import evidence_recall, unsupported_specifics


def _group(results: Iterable[Result], key: Callable[[Result], Any]) -> dict[Any, list[Result]]:
    groups: dict[Any, list[Result]] = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    return groups


def _recipes(results: Sequence[Result]) -> list[str]:
    return list(dict.fromkeys(r.recipe for r in results))


def accuracy(results: Sequence[Result]) -> float:
    return mean(r.score for r in results) if results else float("nan")


def recall(results: Sequence[Result]) -> float:
    """Mean evidence recall over runs whose task has gold spans (NaN when none has)."""
    values = [r.evidence_recall for r in results if r.evidence_recall is not None]
    return mean(values) if values else float("nan")


def unsupported_share(results: Sequence[Result]) -> float:
    """Share of answers (failed runs left out) stating a number, date or name that no citation nor the question holds."""
    answered = [r for r in results if not r.error]
    return sum(bool(r.unsupported) for r in answered) / len(answered) if answered else float("nan")


def rescore(results: Sequence[Result]) -> list[Result]:
    """Recompute evidence recall and unsupported specifics from what each run stored, with today's checker.

    Results files keep the raw facts (gold spans, evidence spans, quotes, the answer), so an
    older run is judged by the same rule as a new one.
    """
    out = []
    for r in results:
        if r.error:
            out.append(r)
            continue
        out.append(
            r.model_copy(
                update={
                    "evidence_recall": evidence_recall(r.gold_spans, r.evidence_spans),
                    "unsupported": unsupported_specifics(r.prediction, r.quotes, r.question),
                }
            )
        )
    return out


def _fmt(value: float, percent: bool = False) -> str:
    if value != value:  # NaN
        return "–"
    return f"{value:.0%}" if percent else f"{value:.2f}"


def summary(results: Sequence[Result]) -> list[dict[str, Any]]:
    """One row per recipe: accuracy and mean cost per question."""
    rows = []
    for recipe, rs in _group(results, lambda r: r.recipe).items():
        rows.append(
            {
                "recipe": recipe,
                "questions": len(rs),
                "accuracy": round(accuracy(rs), 3),
                "evidence_recall": _round(recall(rs)),
                "unsupported_share": _round(unsupported_share(rs)),
                "exact": round(mean(r.exact for r in rs), 3),
                "f1": round(mean(r.f1 for r in rs), 3),
                "tokens": round(mean(r.total_tokens for r in rs)),
                "engine_calls": round(mean(r.engine_calls for r in rs), 2),
                "seconds": round(mean(r.seconds for r in rs), 2),
                "cpu_seconds": round(mean(r.cpu_seconds for r in rs), 2),
                "partial": sum(r.partial for r in rs),
                "errors": sum(bool(r.error) for r in rs),
            }
        )
    return rows


def _round(value: float) -> float | None:
    return None if value != value else round(value, 3)


def evidence_sources(results: Sequence[Result]) -> dict[str, int]:
    """How many runs measured recall from an `evidence` step, from citations (older code), or had neither."""
    return {k: len(v) for k, v in sorted(_group([r for r in results if not r.error], lambda r: r.evidence_source or "none").items())}


def cells(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Kind x length x recipe: questions, accuracy, evidence recall and unsupported share (summary.json)."""
    rows = []
    for (kind, length, recipe), rs in _group(results, lambda r: (r.kind, r.length, r.recipe)).items():
        rows.append(
            {
                "kind": kind,
                "length": length,
                "recipe": recipe,
                "questions": len(rs),
                "accuracy": round(accuracy(rs), 3),
                "evidence_recall": _round(recall(rs)),
                "unsupported_share": _round(unsupported_share(rs)),
                "errors": sum(bool(r.error) for r in rs),
            }
        )
    return rows


def kind_recipe_tables(results: Sequence[Result]) -> str:
    """Per document length, one table: task kinds (rows) x recipes (columns), each cell accuracy / recall / unsupported."""
    recipes = _recipes(results)
    parts = []
    for length in sorted({r.length for r in results}):
        at = [r for r in results if r.length == length]
        window = at[0].context_window
        times = f", {length / window:.0f}x the {window}-token window" if window else ""
        rows = []
        for kind in dict.fromkeys(r.kind for r in at):
            row = [kind]
            for recipe in recipes:
                rs = [r for r in at if r.kind == kind and r.recipe == recipe]
                row.append(f"{_fmt(accuracy(rs))} / {_fmt(recall(rs))} / {_fmt(unsupported_share(rs), True)} (n={len(rs)})" if rs else "–")
            rows.append(row)
        rows.append(["**all**"] + [f"{_fmt(accuracy(rs))} / {_fmt(recall(rs))} / {_fmt(unsupported_share(rs), True)} (n={len(rs)})" for rs in ([r for r in at if r.recipe == x] for x in recipes)])
        parts += [f"### {length} tokens{times}", "", _markdown_table(["kind", *recipes], rows), ""]
    return "\n".join(parts).rstrip()


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pivot(results: Sequence[Result], column: Callable[[Result], Any], columns: Sequence[Any]) -> str:
    rows = []
    for recipe in _recipes(results):
        cells = _group([r for r in results if r.recipe == recipe], column)
        rows.append([recipe] + [f"{accuracy(cells[c]):.2f}" if cells.get(c) else "–" for c in columns] + [f"{accuracy([r for r in results if r.recipe == recipe]):.2f}"])
    return _markdown_table(["recipe", *[str(c) for c in columns], "all"], rows)


def length_table(results: Sequence[Result]) -> str:
    """Accuracy per recipe (rows) and requested length in tokens (columns)."""
    lengths = sorted({r.length for r in results})
    return _pivot(results, lambda r: r.length, lengths)


def kind_table(results: Sequence[Result]) -> str:
    kinds = list(dict.fromkeys(r.kind for r in results))
    return _pivot(results, lambda r: r.kind, kinds)


def machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": "",
        "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
    }
    torch = sys.modules.get("torch")  # only if the engine already loaded it
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# -- plots -------------------------------------------------------------------------------------


def heatmap(results: Sequence[Result], path: Path) -> Path:
    """Accuracy by length (x) and depth (y), one panel per recipe; tasks without a depth are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    placed = [r for r in results if r.depth is not None]
    recipes = _recipes(placed)
    lengths = sorted({r.length for r in placed})
    depths = sorted({r.depth for r in placed})
    cols = min(4, max(1, len(recipes)))
    rows = (len(recipes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 + 1.2 * len(lengths) * cols, 1.0 + (0.55 * len(depths) + 1.0) * rows), squeeze=False, layout="constrained")
    image = None
    for ax, recipe in zip(axes.flat, recipes):
        cells = _group([r for r in placed if r.recipe == recipe], lambda r: (r.depth, r.length))
        grid = [[accuracy(cells[(d, n)]) if cells.get((d, n)) else float("nan") for n in lengths] for d in depths]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value == value:  # not NaN
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
        ax.set_title(recipe, fontsize=10)
        ax.set_xticks(range(len(lengths)), [str(n) for n in lengths], fontsize=8)
        ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths], fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("document tokens", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("needle depth", fontsize=8)
    for ax in list(axes.flat)[len(recipes) :]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="accuracy")
    fig.suptitle(_title(results, "accuracy by length x depth"), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def kind_heatmap(results: Sequence[Result], path: Path) -> Path:
    """Accuracy, evidence recall and unsupported share by task kind (rows) x recipe (columns), one row of panels per length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipes = _recipes(results)
    kinds = list(dict.fromkeys(r.kind for r in results))
    lengths = sorted({r.length for r in results})
    metrics = (("accuracy", accuracy, "RdYlGn"), ("evidence recall", recall, "RdYlGn"), ("unsupported share", unsupported_share, "RdYlGn_r"))
    fig, axes = plt.subplots(
        len(lengths), 3, figsize=(3 * (1.4 + 0.75 * len(recipes)), 0.6 + (0.42 * len(kinds) + 1.0) * len(lengths)), squeeze=False, layout="constrained"
    )
    for row, length in enumerate(lengths):
        at = [r for r in results if r.length == length]
        groups = _group(at, lambda r: (r.kind, r.recipe))
        for col, (name, metric, cmap) in enumerate(metrics):
            ax = axes[row][col]
            grid = [[metric(groups[(k, x)]) if groups.get((k, x)) else float("nan") for x in recipes] for k in kinds]
            ax.imshow(grid, vmin=0, vmax=1, cmap=cmap, aspect="auto")
            for i, line in enumerate(grid):
                for j, value in enumerate(line):
                    if value == value:
                        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(recipes)), recipes, fontsize=7, rotation=30, ha="right")
            ax.set_yticks(range(len(kinds)), kinds if col == 0 else [""] * len(kinds), fontsize=7)
            ax.set_title(f"{name}, {length} tokens", fontsize=9)
    fig.suptitle(_title(results, "by task kind x recipe (blank: no gold spans or no runs)"), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and accuracy (higher), by cost."""
    front: list[tuple[float, float]] = []
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((cost, acc))
    return front


def frontier(results: Sequence[Result], path: Path) -> Path:
    """Accuracy against mean tokens per question: per recipe and length (small), per recipe (large)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    overall = []
    for recipe in _recipes(results):
        rs = [r for r in results if r.recipe == recipe]
        by_length = sorted(_group(rs, lambda r: r.length).items())
        xs = [mean(r.total_tokens for r in g) for _, g in by_length]
        ys = [accuracy(g) for _, g in by_length]
        (line,) = ax.plot(xs, ys, marker="o", markersize=4, alpha=0.6, label=recipe)
        for (n, _), x, y in zip(by_length, xs, ys):
            ax.annotate(str(n), (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points", color=line.get_color())
        point = (mean(r.total_tokens for r in rs), accuracy(rs))
        overall.append(point)
        ax.scatter(*point, s=90, marker="*", color=line.get_color(), edgecolor="black", zorder=3)
    front = pareto(overall)
    if len(front) > 1:
        ax.plot(*zip(*front), linestyle="--", color="gray", label="frontier (all lengths)")
    ax.set_xscale("log")
    ax.set_xlabel("tokens per question (prompt + completion, mean)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(_title(results, "accuracy vs tokens (numbers: document length; stars: all lengths)"), fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _title(results: Sequence[Result], what: str) -> str:
    if not results:
        return what
    r = results[0]
    return f"{r.model or r.engine}, {r.context_window}-token window: {what}"


# -- the report --------------------------------------------------------------------------------


def write_report(
    results: Sequence[Result],
    out_dir: str | Path,
    *,
    command: str = "",
    plots: bool = True,
    planned_runs: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write report.md, summary.json and (with matplotlib) heatmap.png and frontier.png into out_dir.

    planned_runs: tasks x recipes that were asked for; when more than the results, the
    report says the run is incomplete (rerunning the same command resumes it).
    """
    from ctxagent.evaluation import provenance as stamp

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = rescore(results)
    info = machine()
    lines = ["# ctxagent evaluation", "", stamp.markdown_line(provenance), ""]
    if results:
        r = results[0]
        lines.append(f"Engine `{r.engine}` ({r.model}), context window {r.context_window} tokens; {len(results)} runs over {len({x.task_id for x in results})} tasks.")
    gpu = f", GPU {info['gpu']}" if info["gpu"] else ", no GPU"
    load = f", load average {info['load_average']} when the report was written" if info["load_average"] is not None else ""
    lines.append(f"Machine: {info['processor']}, {info['cpus']} CPUs{gpu}, {info['platform']}; {info['date']}{load}. Seconds are wall-clock on that machine (noisy when it is shared).")
    if command:
        lines += ["", "Produced by:", "", "    " + command]
    if planned_runs and planned_runs > len(results):
        lines += ["", f"**Incomplete**: {len(results)} of {planned_runs} planned runs (task x recipe) are in; rerun the same command to resume."]
    rows = summary(results)
    sources = evidence_sources(results)
    lines += ["", "## Per recipe (means per question)", ""]
    lines.append(
        _markdown_table(
            ["recipe", "questions", "accuracy", "evidence recall", "unsupported share", "exact", "F1", "tokens", "engine calls", "seconds", "CPU seconds", "partial", "errors"],
            [[_fmt(v) if isinstance(v, float) else ("–" if v is None else v) for v in row.values()] for row in rows],
        )
    )
    lines += [
        "",
        "**Evidence recall**: the share of the task's gold evidence spans (every needle, every hop) covered by what the answer step read. "
        "**Unsupported share**: the share of answers stating a number, date or name that appears in none of their citation quotes nor in the question "
        "(`ctxagent/evaluation/scoring.py`, independent of the recipes' own rule). QuALITY and user tasks have no gold spans: no recall.",
    ]
    if sources.get("citations"):
        lines += [
            "",
            f"Evidence recall of {sources['citations']} run(s) comes from the answer's **citations**: their code has no `evidence` trace step "
            "(it predates the grounding helper), and citations are only what was quoted, a subset of what was read.",
        ]
    if sources.get("none"):
        lines += ["", f"{sources['none']} run(s) recorded neither an `evidence` step nor citations (e.g. a bare NOT FOUND): their evidence recall counts as 0."]
    lines += ["", "## By task kind x recipe: accuracy / evidence recall / unsupported share", "", kind_recipe_tables(results)]
    lines += ["", "## Accuracy by document length (tokens)", "", length_table(results)]
    lines += ["", "## Accuracy by task", "", kind_table(results)]
    if plots:
        try:
            kind_heatmap(results, out / "kinds.png")
            frontier(results, out / "frontier.png")
            lines += ["", "## By kind x recipe", "", "![kinds](kinds.png)"]
            if any(r.depth is not None for r in results):
                heatmap(results, out / "heatmap.png")
                lines += ["", "## Accuracy by length x depth", "", "![heat map](heatmap.png)"]
            lines += ["", "## Accuracy vs tokens", "", "![frontier](frontier.png)"]
        except ImportError:
            lines += ["", "(plots skipped: matplotlib is not installed; `pip install ctxagent[eval]`)"]
    errors = [r for r in results if r.error]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {r.recipe} on {r.task_id}: {r.error}" for r in errors[:20]]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({"provenance": provenance, "machine": info, "command": command, "runs": len(results), "planned_runs": planned_runs, "evidence_sources": sources, "recipes": rows, "cells": cells(results)}, indent=2) + "\n", encoding="utf-8")
    return path
