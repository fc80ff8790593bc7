"""The import graph of ctxagent, read with `ast` (nothing is imported): arrows point one way.

Every `import` counts, lazy ones inside functions too (they are dependencies all the same);
imports under `if TYPE_CHECKING:` do not (they never run). Two checks:
- packages (ctxagent's subpackages and top-level modules) form no cycle, and at most one
  import runs back up the layers below (kernels/search.py fits configs with a live engine;
  that import is the only one allowed to close a loop);
- inside a package, modules form no cycle (a package's __init__ only re-exports, so
  imports of it are left out).
Also: the environment is read in envs.py alone, and the library never imports benchmarks/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "ctxagent"

# Top to bottom; an import may go down or sideways, never up (ARCHITECTURE.md: "arrows point one way").
LAYERS = [
    {"cli"},
    {"server", "graph", "batch", "integrations", "evaluation"},
    {"agent"},
    {"corpus"},
    {"recipes"},
    {"compressors", "retrievers", "grounding"},
    {"engines", "encoders"},
    {"kernels"},
    {"loaders", "office", "chunking", "citations", "pages", "scaffolding", "boilerplate", "word_classes"},
    {"types", "errors", "registry", "cache", "defaults", "envs", "provenance", "cancel"},
]
# The one import allowed to run back up: the offline config search drives a model through an engine.
ALLOWED_UP = {("ctxagent.kernels.search", "ctxagent.engines")}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements, skipping `if TYPE_CHECKING:` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the ctxagent modules it imports (to a submodule when `from pkg import submodule`)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_edges(allowed: bool = True) -> dict[tuple[str, str], list[tuple[str, str]]]:
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for source, targets in import_graph().items():
        for target in targets:
            if not allowed and (source, target) in ALLOWED_UP:
                continue
            a, b = _unit(source), _unit(target)
            if a and b and a != b:
                edges.setdefault((a, b), []).append((source, target))
    return edges


def test_every_package_has_a_layer():
    units = {_unit(m) for m in _modules()} - {""}
    placed = set().union(*LAYERS)
    assert units <= placed, f"place {sorted(units - placed)} in LAYERS (and in ARCHITECTURE.md)"


def test_packages_form_no_cycle():
    edges = _package_edges(allowed=False)
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    cycles = _cycles(graph)
    detail = {c: [e for (a, b), es in edges.items() if a in c and b in c for e in es] for c in map(tuple, cycles)}
    assert not cycles, f"package import cycles: {detail}"


def test_at_most_one_import_runs_back_up():
    layer = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}
    up = sorted(e for (a, b), es in _package_edges().items() if layer[b] < layer[a] for e in es)
    assert set(up) <= ALLOWED_UP and len(up) <= 1, f"imports that run back up the layers: {up}"


def test_modules_inside_a_package_form_no_cycle():
    modules = _modules()
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    graph = {m: {t for t in ts if t not in packages} for m, ts in import_graph().items() if m not in packages}
    assert not _cycles(graph)


def test_the_environment_is_read_in_envs_only():
    readers = [
        str(p.relative_to(ROOT.parent))
        for p in ROOT.rglob("*.py")
        if p.name != "envs.py" and any(s in p.read_text(encoding="utf-8") for s in ("os.environ", "os.getenv", "getenv("))
    ]
    assert not readers, f"read environment variables through ctxagent.envs, not in {readers}"


@pytest.mark.parametrize("needle", ["benchmarks", "spec_from_file_location"])
def test_the_library_never_loads_benchmarks(needle):
    offenders = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == needle:
                offenders.append(str(path))
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == needle for a in node.names):
                offenders.append(str(path))
            elif isinstance(node, ast.Attribute) and node.attr == needle:
                offenders.append(str(path))
    assert not offenders, f"the library loads code from benchmarks/: {offenders}"
