"""The README names what the code has: every extra in pyproject.toml, every module and package of ctxagent."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_extra_is_listed() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    listed = set(re.findall(r"`\[([a-z0-9_-]+)\]`", _section("How it is built")))
    assert set(extras) == listed


def test_the_how_it_is_built_table_names_every_module_and_package() -> None:
    # The layers table: | layer | modules | job |; the modules column names each module and package.
    rows = [line.split("|") for line in _section("How it is built").splitlines() if line.startswith("| ") and line.count("|") >= 4]
    table = "\n".join(cells[2] for cells in rows)
    named = set(re.findall(r"`(?:ctxagent/)?([A-Za-z_][\w]*(?:\.py|/))`", table))
    package = ROOT / "ctxagent"
    present = {f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    present |= {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    assert present - named == set(), "add these to README's 'How it is built' table"
    assert named - present == set(), "README's table names modules that no longer exist"
