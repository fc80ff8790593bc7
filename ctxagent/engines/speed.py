"""How fast an engine reads (prefill) and writes (decode), measured once per model and machine.

`auto` plans against a time budget, so it needs seconds, not tokens. Those depend
on the model, the hardware and the backend, so each engine measures them with a
short probe through its own `generate` the first time they are needed, and the
result is cached under the ctxagent cache directory, keyed by engine, model and
machine (for `openai`, by server URL and model). Later runs read the cache.

Why a probe and not timings of real calls: a real call mixes prefill and decode,
batches prompts of different lengths and stops early, so splitting its seconds
into two speeds is guesswork; the probe separates them by construction (one long
prompt with one new token, one short prompt with many) and costs a few seconds
once. `measure_speed(engine, refresh=True)` measures again (e.g. after a hardware
change, or when the machine was busy the first time); entries older than
`MAX_AGE_DAYS` are remeasured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from typing import Any

from pydantic import BaseModel, Field

from ctxagent.cache import cache_dir

log = logging.getLogger(__name__)

# Used only when an engine neither measures itself nor says its speed: SmolLM2-135M on 2 CPU cores.
ASSUMED_PREFILL = 300.0
ASSUMED_DECODE = 15.0
MAX_AGE_DAYS = 30
PROBE_PROMPT_TOKENS = 512
PROBE_NEW_TOKENS = 16
_PROBE_SENTENCE = "The committee met on a grey morning to read the long report about the harbour, the ships and the trade of the town. "


class EngineSpeed(BaseModel):
    """Measured (or assumed) throughput of one engine on one machine, in tokens per second."""

    prefill_tokens_per_second: float = Field(gt=0)
    decode_tokens_per_second: float = Field(gt=0)
    source: str = Field(default="assumed", description="probe | cache | engine | assumed")
    key: str = ""
    measured_at: float = 0.0

    def seconds(self, prompt_tokens: int, new_tokens: int) -> float:
        """Estimated wall time of a call reading `prompt_tokens` and writing `new_tokens` in all.

        Decode is counted as if prompts were written one after another, which overestimates
        batched backends a little: the planner should err on the side of finishing in time.
        """
        return prompt_tokens / self.prefill_tokens_per_second + new_tokens / self.decode_tokens_per_second

    def describe(self) -> str:
        return f"prefill ~{self.prefill_tokens_per_second:,.0f} tok/s, decode ~{self.decode_tokens_per_second:,.1f} tok/s ({self.source})"


def machine_fingerprint(device: str = "cpu") -> str:
    """What makes speeds differ between machines: host, CPU, core count and the accelerator."""
    parts = [platform.node(), platform.machine(), platform.processor(), str(os.cpu_count()), device]
    if device.startswith("cuda"):
        try:
            import torch

            parts.append(torch.cuda.get_device_name(torch.device(device)))
        except Exception:  # pragma: no cover - no CUDA here
            pass
    return "|".join(parts)


def engine_key(engine: Any) -> str:
    """The cache key of an engine's measurements: its own `speed_key()` or its name and model."""
    own = getattr(engine, "speed_key", None)
    if callable(own):
        return str(own())
    return f"{getattr(engine, 'name', type(engine).__name__)}|{getattr(engine, 'model_name', '?')}|{machine_fingerprint()}"


def _path(kind: str, key: str) -> Any:
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir(kind) / f"{digest}.json"


def cached_speed(key: str) -> EngineSpeed | None:
    path = _path("speeds", key)
    try:
        speed = EngineSpeed.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
    if speed.key != key or time.time() - speed.measured_at > MAX_AGE_DAYS * 86400:
        return None
    return speed.model_copy(update={"source": "cache"})


def _save(kind: str, key: str, payload: str) -> None:
    path = _path(kind, key)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    partial.write_text(payload)
    partial.replace(path)


def probe_speed(engine: Any, prompt_tokens: int = PROBE_PROMPT_TOKENS, new_tokens: int = PROBE_NEW_TOKENS) -> EngineSpeed:
    """Time one long prompt with one new token (prefill) and one short prompt with many (decode)."""
    from ctxagent.engines.base import SamplingParams

    size = max(64, min(prompt_tokens, engine.context_window // 2))
    per_sentence = max(1, engine.count_tokens(_PROBE_SENTENCE))
    long_prompt = _PROBE_SENTENCE * max(1, size // per_sentence)
    short_prompt = "Write the numbers from one to one hundred in words, separated by commas."
    engine.generate(["Say hello."], SamplingParams(max_new_tokens=2))  # warm-up: first-call costs are not speed
    began = time.perf_counter()
    decoded = engine.generate([short_prompt], SamplingParams(max_new_tokens=new_tokens))[0]
    decode_seconds = max(time.perf_counter() - began, 1e-6)
    decode = max(1, decoded.completion_tokens) / decode_seconds
    began = time.perf_counter()
    read = engine.generate([long_prompt], SamplingParams(max_new_tokens=1))[0]
    prefill_seconds = max(time.perf_counter() - began - 1 / decode, 1e-6)
    prefill = max(1, read.prompt_tokens) / prefill_seconds
    return EngineSpeed(prefill_tokens_per_second=prefill, decode_tokens_per_second=decode, source="probe")


def measure_speed(engine: Any, refresh: bool = False) -> EngineSpeed:
    """The engine's speed from the cache, or probed now and cached (per model and machine)."""
    key = engine_key(engine)
    if not refresh:
        known = cached_speed(key)
        if known is not None:
            return known
    log.info("measuring the speed of %s once (a few seconds); cached for later runs", key.split("|")[1] if "|" in key else key)
    speed = probe_speed(engine).model_copy(update={"key": key, "measured_at": time.time()})
    _save("speeds", key, speed.model_dump_json())
    return speed


def engine_speed(engine: Any, probe: bool = True) -> EngineSpeed:
    """What the planner uses: the engine's own `speed()` (probed and cached on first need; with
    `probe=False` only a cached measurement), else a `tokens_per_second` it states, else the
    assumed speed of the embedded model on a small CPU (said so in `source`)."""
    own = getattr(engine, "speed", None)
    if callable(own):
        if probe:
            return own()
        known = getattr(engine, "_speed", None) or cached_speed(engine_key(engine))  # measured earlier
        if isinstance(known, EngineSpeed):
            return known
    stated = getattr(engine, "tokens_per_second", None)
    if stated:
        return EngineSpeed(prefill_tokens_per_second=float(stated), decode_tokens_per_second=max(1.0, float(stated) / 20), source="engine")
    return EngineSpeed(prefill_tokens_per_second=ASSUMED_PREFILL, decode_tokens_per_second=ASSUMED_DECODE, source="assumed")


def save_json(kind: str, key: str, record: dict[str, Any]) -> None:
    """Store a per-model measurement of another kind (e.g. effective context) beside the speeds."""
    _save(kind, key, json.dumps({"key": key, **record}))


def load_json(kind: str, key: str) -> dict[str, Any] | None:
    try:
        record = json.loads(_path(kind, key).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("key") == key else None


class ProbedSpeed:
    """Mixin for engines: `speed()` probes once per model and machine (`speed_key()` names them),
    then reads the cache; the engine keeps the result for its lifetime."""

    _speed: EngineSpeed | None = None

    def speed(self) -> EngineSpeed:
        """Prefill and decode tokens/s, probed once per model and machine, then read from the cache."""
        if self._speed is None:
            self._speed = measure_speed(self)
        return self._speed

