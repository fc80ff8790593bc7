"""vLLM backend (offline `vllm.LLM`). Its full implementation lands with the vLLM engine issue."""

from __future__ import annotations

from typing import Any

from ctxagent.engines import register
from ctxagent.errors import EngineNotInstalled


@register("vllm")
class VLLMEngine:
    name = "vllm"

    def __init__(self, model: str | None = None, **options: Any) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise EngineNotInstalled("the vllm engine needs vLLM: `pip install ctxagent[vllm]`") from exc
        raise NotImplementedError("the vllm engine is not implemented yet")
