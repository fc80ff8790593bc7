"""Moved to ctxagent.kernels.vllm.prefill; this name stays for code (and installed entry points)
that still import it: it is the same module object, not a copy."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("ctxagent.kernels.vllm.prefill")
