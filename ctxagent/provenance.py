"""Where a published figure came from: the commit, the machine, its load and the command.

Every results file (benchmarks/results/*.json, docs/eval/*.json) carries this block, so
a reader can tell which code produced a number and rerun it. A run from a tree with
uncommitted changes measures code nobody can check out again, so `stamp` refuses it
unless the caller passes `allow_dirty=True` (the scripts' `--allow-dirty` flag), and
then the commit is marked `-dirty`.

The library owns this module (the eval harness stamps its reports with it); benchmarks/provenance.py
re-exports it for the benchmark scripts. It needs nothing beyond the standard library (torch only if
installed), so kernel benchmarks on a bare GPU machine can use it.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ctxagent import envs

# The source checkout this module sits in (an installed ctxagent has none: see in_checkout).
REPO = Path(__file__).resolve().parent.parent


class DirtyTree(RuntimeError):
    pass


def in_checkout() -> bool:
    """Whether ctxagent runs from a source checkout (with benchmarks/ beside it), so a commit can be named."""
    return (REPO / "pyproject.toml").is_file() and (REPO / "benchmarks").is_dir()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


RESULT_DIRS = ("benchmarks/results", "docs/eval")


def commit(allow_dirty: bool = False) -> str:
    """HEAD's hash, with `-dirty` when tracked files differ from it (refused unless allowed).
    Results files themselves (RESULT_DIRS) do not count: a run that rewrote one figure must
    not make the next benchmark of the same code refuse. Where the tree is a copy without
    git (a lent GPU machine), the caller names the commit it copied in CTXAGENT_COMMIT."""
    vouched = envs.get("CTXAGENT_COMMIT")
    if vouched:  # a copy whose sender vouches for the commit (its .git, if any, is stale)
        return vouched
    head = _git("rev-parse", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){d}" for d in RESULT_DIRS)):
        if not allow_dirty:
            raise DirtyTree(
                "the working tree has uncommitted changes, so these results would name no commit anyone can check out; "
                "commit first, or pass --allow-dirty to record them as '<commit>-dirty'"
            )
        return f"{head}-dirty"
    return head


def machine() -> dict[str, Any]:
    """What ran it: CPU, cores, OS, Python, torch and its threads, and a GPU if one is visible."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpus"] = torch.cuda.device_count()
    except ImportError:
        pass
    return info


def load() -> list[float]:
    """1, 5 and 15 minute load averages: well above the core count means a shared machine."""
    return [round(x, 2) for x in os.getloadavg()]


def was_shared(loads: list[float], cpus: int | None) -> bool:
    """Whether other work competed for the CPU: a benchmark keeps its cores busy itself (load
    about the core count), so only a load average well above that means others were running."""
    return bool(cpus) and any(x > 1.5 * cpus for x in loads)


def shared_note(load_avg: list[float], cpus: int | None) -> str:
    """A sentence for tables when the machine was busy with other work during the run."""
    if was_shared(load_avg[:1], cpus):
        return f"The machine was shared (1-min load {load_avg[0]:.1f} on {cpus} cores): read absolute times with care; ratios were measured side by side."
    return ""


def stamp(allow_dirty: bool = False, argv: list[str] | None = None) -> dict[str, Any]:
    """The provenance block to store under "provenance" in a results file, taken at the start of a run."""
    argv = sys.argv if argv is None else argv
    return {
        "commit": commit(allow_dirty),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *argv]),
        "machine": machine(),
        "load_start": load(),
    }


def finish(block: dict[str, Any]) -> dict[str, Any]:
    """Add the load at the end of the run (a load that rose mid-run shows here)."""
    block["load_end"] = load()
    return block


def markdown_line(block: dict[str, Any]) -> str:
    """One line for a results .md: commit, date, machine, load and command."""
    m = block.get("machine", {})
    where = m.get("gpu") or f"{m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs"
    return (
        f"Commit `{block['commit'][:12]}{'-dirty' if block['commit'].endswith('-dirty') else ''}`, {block['date']}, {where}, "
        f"load {block.get('load_start')} -> {block.get('load_end')}; command: `{block['command']}`"
    )


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion: honest error bars for a handful of tasks."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))
