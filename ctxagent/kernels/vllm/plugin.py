"""Sparse prefill inside vLLM, through vLLM's own extension points.

vLLM loads every `vllm.general_plugins` entry point in each of its processes (front end,
engine core, workers); ctxagent declares `register` below as one (pyproject.toml). The
plugin does nothing unless `CTXAGENT_VLLM_SPARSE` holds a sparse-prefill config (JSON),
so installing ctxagent never changes how vLLM runs for anyone else. When it is set, the
plugin registers ctxagent's attention backend in vLLM's attention backend registry
(`vllm.v1.attention.backends.registry.register_backend`):

- on CUDA as the `CUSTOM` backend, which the engine selects with
  `attention_config={"backend": "CUSTOM"}`; it extends FlashAttention;
- on CPU as the implementation behind `CPU_ATTN`, because vLLM's CPU platform always
  picks that backend (the registry's documented override; nothing is patched).

Inside the backend, each step's batch is split: requests whose whole prompt is being
prefilled in this step and is at least `min_length` tokens long go through ctxagent's
sparse prefill (the Triton kernels on GPU, their torch references on CPU); decode steps,
short prompts, continuations of chunked prefills and prompts whose prefix came from the
prefix cache stay on vLLM's own kernels (their cached keys live in vLLM's paged cache),
as do layers with sliding windows, soft-capping, ALiBi or sinks (logged once).

Written against vLLM 0.32 (`vllm.v1.attention.backends.registry`, the v1 metadata
builders, `CommonAttentionMetadata.seq_lens_cpu_upper_bound`); pyproject pins that.

`VLLMEngine(sparse_prefill=...)` sets all of this up; `attention_options` is what it adds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ctxagent import envs

ENV_VAR = "CTXAGENT_VLLM_SPARSE"
DEFAULT_MIN_LENGTH = 8192
CUDA_BACKEND = "ctxagent.kernels.vllm.backend.SparseFlashAttentionBackend"
CPU_BACKEND = "ctxagent.kernels.vllm.backend.SparseCPUAttentionBackend"


def config_to_json(spec: Any) -> str:
    """A sparse-prefill config (True, dict, SparseConfig, or path to JSON) as the JSON the plugin reads."""
    if spec is True or spec == "default":
        data: dict[str, Any] = {}
    elif isinstance(spec, dict):
        data = dict(spec)
    elif isinstance(spec, (str, Path)) and Path(spec).is_file():
        data = json.loads(Path(spec).read_text())
    elif hasattr(spec, "to_dict"):
        data = spec.to_dict()
    else:
        raise ValueError(f"sparse_prefill must be True, a dict, a SparseConfig or a path to a JSON config; got {spec!r}")
    data.setdefault("min_length", DEFAULT_MIN_LENGTH)
    if int(data["min_length"]) < 1:
        raise ValueError(f"sparse_prefill min_length must be at least 1; got {data['min_length']}")
    return json.dumps(data)


def active_config() -> dict[str, Any] | None:
    """The config the plugin runs with in this process, or None when sparse prefill is off."""
    raw = envs.get(ENV_VAR)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"${ENV_VAR} is not valid JSON ({exc}); unset it or set it with VLLMEngine(sparse_prefill=...)") from exc
    if not isinstance(data, dict):
        raise ValueError(f"${ENV_VAR} must hold a JSON object; got {raw[:80]!r}")
    return data


def attention_options(spec: Any, *, on_cpu: bool, context_window: int | None = None) -> dict[str, Any]:
    """Switch sparse prefill on for the vLLM engines started after this call; returns `vllm.LLM` options.

    The config travels in an environment variable because vLLM starts its engine core and
    workers as child processes, which inherit the environment and load the plugin there.
    The whole prompt must be prefilled in one step for the sparse path to see it, so the
    per-step token budget is raised to the context window; without one given, chunked
    prefill is switched off, which makes vLLM raise the budget to the model's own window.
    """
    envs.put(ENV_VAR, config_to_json(spec))
    options: dict[str, Any] = {}
    if not on_cpu:
        options["attention_config"] = {"backend": "CUSTOM"}
    if context_window:
        options["max_num_batched_tokens"] = max(int(context_window), 2048)
    else:
        options["enable_chunked_prefill"] = False
    return options


_set_here = False  # whether this process's VLLMEngine set ENV_VAR (so it may also unset it)


def register() -> None:
    """The `vllm.general_plugins` entry point: register the sparse backend if a config is active.

    Safe to call repeatedly (vLLM loads plugins once per process; the engine calls it again
    when it switches sparse prefill on in a process whose plugins are already loaded)."""
    if active_config() is None:
        return
    from vllm.platforms import current_platform
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

    if current_platform.is_cpu():
        register_backend(AttentionBackendEnum.CPU_ATTN, CPU_BACKEND)
    else:
        register_backend(AttentionBackendEnum.CUSTOM, CUDA_BACKEND)


def configure(spec: Any, *, on_cpu: bool, context_window: int | None = None) -> dict[str, Any]:
    """What VLLMEngine calls before starting vLLM: sparse prefill on (spec) or off (None).

    Off only undoes what an earlier engine of this process did; a config the user put in
    the environment (e.g. for `vllm serve`) is left alone."""
    global _set_here
    if spec:
        options = attention_options(spec, on_cpu=on_cpu, context_window=context_window)
        _set_here = True
        register()
        _forget_selected_backends()
        return options
    if _set_here:
        envs.unset(ENV_VAR)
        _set_here = False
        from vllm.v1.attention.backends.registry import AttentionBackendEnum

        for backend in (AttentionBackendEnum.CPU_ATTN, AttentionBackendEnum.CUSTOM):
            if backend.is_overridden() and backend.get_path() in (CPU_BACKEND, CUDA_BACKEND):
                backend.clear_override()
        _forget_selected_backends()
    return {}


def _forget_selected_backends() -> None:
    """vLLM memoises the backend class it picked per layer kind; when an earlier engine of this
    process (in-process engine core) picked one, the next engine would reuse it whatever the
    registry now says. Each engine core process of a normal vLLM run starts with an empty memo."""
    from vllm.v1.attention import selector

    memo = getattr(selector, "_cached_get_attn_backend", None)
    if memo is not None and hasattr(memo, "cache_clear"):
        memo.cache_clear()
