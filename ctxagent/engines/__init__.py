"""LLM engines behind one protocol, chosen by name.

    from ctxagent.engines import get_engine
    engine = get_engine("hf")                      # embedded SmolLM2-135M-Instruct
    engine = get_engine("openai", base_url="http://127.0.0.1:8000/v1", model="m")

Add your own with `@ctxagent.engines.register("name")` on a class implementing
`Engine`, or through the `ctxagent.engines` entry-point group.
"""

from __future__ import annotations

from typing import Any

from ctxagent.defaults import DEFAULT_ENGINE
from ctxagent.engines.base import Completion, Engine, Message, Prompt, SamplingParams, TokenScores
from ctxagent.registry import Registry

registry: Registry[Engine] = Registry("engine")
register = registry.register
registry.register_lazy("hf", "ctxagent.engines.hf:HFEngine")
registry.register_lazy("openai", "ctxagent.engines.openai:OpenAIEngine")
registry.register_lazy("vllm", "ctxagent.engines.vllm:VLLMEngine")


def get_engine(name: str = DEFAULT_ENGINE, **options: Any) -> Engine:
    """Build the engine registered under `name` with backend-specific options."""
    return registry.get(name)(**options)


__all__ = [
    "Completion",
    "Engine",
    "Message",
    "Prompt",
    "SamplingParams",
    "TokenScores",
    "get_engine",
    "register",
    "registry",
]
