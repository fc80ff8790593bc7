"""Every environment variable ctxagent reads or sets, declared once with its default and meaning.

As vLLM's `envs.py`: other modules call `envs.get(NAME)` (or a helper below) instead of
touching `os.environ`, so this file is the whole list a user or an operator needs.
An empty value counts as unset. `worker_env()` is the one set of variables the Ray
executors (batch questions, corpus indexing) send to their workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None
    doc: str
    forward: bool = False  # sent to Ray workers, so they load the same models from the same cache


_DECLARED = (
    Variable("CTXAGENT_CACHE", None, "where converted models, indexes and summary trees are kept (default ~/.cache/ctxagent)", forward=True),
    Variable("CTXAGENT_COMMIT", None, "the commit a results file names when the tree is a copy without git (a lent GPU machine)", forward=True),
    Variable("CTXAGENT_API_KEY", None, "the key `ctxagent serve` requires of clients when --api-key is not given"),
    Variable(
        "CTXAGENT_VLLM_SPARSE", None,
        "the sparse-prefill config (JSON) the vLLM plugin runs with; set by VLLMEngine(sparse_prefill=...) so vLLM's child processes inherit it",
        forward=True,
    ),  # fmt: skip
    Variable("OPENAI_BASE_URL", None, "the OpenAI-compatible server the openai engine talks to when base_url is not given"),
    Variable("OPENAI_API_KEY", None, "the openai engine's API key (another variable can be named with api_key_env=)"),
    Variable("HF_HUB_OFFLINE", None, "1: transformers and huggingface_hub never reach the network", forward=True),
    Variable("HF_HUB_DISABLE_PROGRESS_BARS", None, "1: no weight-loading bars (the CLI sets it unless --verbose)", forward=True),
    Variable("TOKENIZERS_PARALLELISM", None, "false: quiets the tokenizers' fork warning", forward=True),
    Variable("PYTHONPATH", None, "forwarded so Ray workers import the same ctxagent as the driver", forward=True),
    Variable(
        "CTXAGENT_KERNEL_LOADS", "auto",
        "how the sparse kernel moves listed key blocks, query tiles and output tiles: tma (through tensor "
        "descriptors), pointers (per row), or auto (tma on Hopper and later GPUs when the tensors' strides allow it)",
    ),  # fmt: skip
    Variable("TRITON_INTERPRET", None, "1: Triton kernels run in its CPU interpreter (tests, debugging)"),
    Variable("VLLM_TARGET_DEVICE", None, "cpu: the installed vLLM is the CPU build"),
    Variable("MALLOC_ARENA_MAX", None, "glibc's malloc arenas; when set, `ctxagent serve` keeps it instead of capping arenas at 4 (server/memory.py)"),
    Variable("GLIBC_TUNABLES", None, "glibc's tunables; one naming arena_max likewise keeps `ctxagent serve` from capping arenas"),
    Variable("VLLM_ENABLE_V1_MULTIPROCESSING", None, "set by the vllm engine: 0 keeps vLLM's engine core in this process"),
)
VARIABLES: dict[str, Variable] = {v.name: v for v in _DECLARED}

# Besides the declared variables marked `forward`, Ray workers get every variable with these
# prefixes (a user's CTXAGENT_* or HF_* setting means the same on a worker).
FORWARD_PREFIXES = ("CTXAGENT_", "HF_")


def get(name: str) -> str | None:
    """The variable's value, or its declared default when unset or empty."""
    value = os.environ.get(name)
    if value:
        return value
    declared = VARIABLES.get(name)
    return declared.default if declared else None


def flag(name: str) -> bool:
    """True when the variable is "1"."""
    return get(name) == "1"


def put(name: str, value: str) -> None:
    os.environ[name] = value


def set_default(name: str, value: str) -> None:
    """Set the variable unless the user already did (their setting wins)."""
    os.environ.setdefault(name, value)


def unset(name: str) -> None:
    os.environ.pop(name, None)


def cache_root() -> Path:
    return Path(get("CTXAGENT_CACHE") or Path.home() / ".cache" / "ctxagent")


def worker_env() -> dict[str, str]:
    """The variables a Ray worker should see as the driver does (its model cache above all)."""
    forward = {v.name for v in _DECLARED if v.forward}
    return {k: v for k, v in os.environ.items() if k in forward or k.startswith(FORWARD_PREFIXES)}


def adopt(env: dict[str, str]) -> None:
    """On a worker: take the driver's variables, except those the worker's own environment sets."""
    for key, value in env.items():
        os.environ.setdefault(key, value)
