"""The torch half of sparse prefill in vLLM: which rows of a step to take, and how to attend them.

Kept apart from the vLLM backend classes so it imports only torch and is tested without vLLM.
vLLM hands an attention backend one flat batch per step: `query [tokens, heads, dim]`,
`key/value [tokens, kv_heads, dim]` for the new tokens, `query_start_loc` (cumulative
query lengths, one more entry than requests) and `seq_lens` (tokens in each request's
sequence, cached plus new). A request is a *fresh prefill* when all of its tokens are
new in this step (query length == sequence length): then its keys and values are all in
this step's `key`/`value`, and causal self-attention over them is exactly its prefill.

Every decision here reads CPU tensors (vLLM's `query_start_loc_cpu` and
`seq_lens_cpu_upper_bound`, exact for prefill rows), so deciding costs no device sync
and nothing here runs inside a CUDA graph: steps that hold a fresh long prefill are
never captured (vLLM captures uniform decode batches only), and in captured steps no
span qualifies.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

import torch

log = logging.getLogger(__name__)
_calls: dict[str, float] = {"sparse_prefills": 0, "sparse_tokens": 0, "sparse_seconds": 0.0}


def stats() -> dict[str, float]:
    """How many prefills (and tokens, and seconds) went through the sparse path in this process."""
    return dict(_calls)


def fresh_prefill_spans(query_start_loc: torch.Tensor, seq_lens: torch.Tensor, num_reqs: int, min_length: int) -> list[tuple[int, int]]:
    """Token ranges [start, end) of requests prefilling their whole prompt of >= min_length
    tokens. Both tensors must be on the CPU: reading device tensors here would stall every
    layer of every step on a device-to-host copy (and break CUDA-graph capture)."""
    if query_start_loc.device.type != "cpu" or seq_lens.device.type != "cpu":
        raise ValueError(
            f"fresh_prefill_spans needs CPU tensors (query_start_loc on {query_start_loc.device}, seq_lens on {seq_lens.device}); "
            "pass vLLM's query_start_loc_cpu and seq_lens_cpu_upper_bound"
        )
    starts = query_start_loc[: num_reqs + 1].tolist()
    lens = seq_lens[:num_reqs].tolist()
    spans = []
    for r in range(num_reqs):
        start, end = int(starts[r]), int(starts[r + 1])
        if end - start >= min_length and end - start == int(lens[r]):
            spans.append((start, end))
    return spans


def unsupported_reason(impl: Any) -> str | None:
    """Why a vLLM attention layer (its impl) must stay on vLLM's kernel, or None: our
    kernels compute plain causal softmax attention, nothing else."""
    attn_type = getattr(impl, "attn_type", "decoder")
    if str(attn_type).lower().rsplit(".", 1)[-1] != "decoder":
        return f"attention type {attn_type}"
    window = getattr(impl, "sliding_window", None)
    if window not in (None, -1, (-1, -1), [-1, -1]):
        return f"sliding window {window}"
    cap = getattr(impl, "logits_soft_cap", None)
    if cap:
        return f"logit soft-capping at {cap}"
    if getattr(impl, "alibi_slopes", None) is not None:
        return "ALiBi position biases"
    if getattr(impl, "sinks", None) is not None:
        return "learned attention sinks"
    return None


def rank_config(config: dict[str, Any], first_head: int, heads: int) -> dict[str, Any]:
    """The per-head config as seen by one tensor-parallel rank, which holds the query heads
    first_head .. first_head + heads - 1 of every layer (vLLM splits heads evenly and in
    order): each listed layer's pattern list sliced to them."""
    if not config.get("layers") or first_head == 0:
        return config
    out = dict(config)
    out["layers"] = {layer: list(patterns)[first_head : first_head + heads] for layer, patterns in config["layers"].items()}
    return out


_warned: set[str] = set()


def warn_dense(reason: str) -> None:
    """Log once per reason that sparse prefill stays off for some layers."""
    if reason not in _warned:
        _warned.add(reason)
        log.warning("ctxagent sparse prefill stays off (vLLM's own kernel runs) for layers with %s", reason)


class LayoutBuilderMixin:
    """Metadata builder that also attaches the batch layout's CPU tensors to the metadata
    (vLLM keeps them in its common metadata; the backend metadata keeps only device copies)."""

    def build(self, common_prefix_len: int, common_attn_metadata: Any, *args: Any, **kwargs: Any) -> Any:
        metadata = super().build(common_prefix_len, common_attn_metadata, *args, **kwargs)  # type: ignore[misc]
        starts = getattr(common_attn_metadata, "query_start_loc_cpu", None)
        lens = getattr(common_attn_metadata, "seq_lens_cpu_upper_bound", None)  # exact for prefill rows
        if starts is not None and lens is not None:
            try:
                metadata.ctxagent_layout = (starts, lens, int(common_attn_metadata.num_reqs))
            except AttributeError:  # a slotted metadata class: the backend then stays dense
                pass
        return metadata


def batch_layout(attn_metadata: Any) -> tuple[Any, Any, int] | None:
    """(query_start_loc, seq_lens, num_reqs) on the CPU, without a device sync, or None."""
    layout = getattr(attn_metadata, "ctxagent_layout", None)
    if layout is not None:
        return layout
    starts, lens = attn_metadata.query_start_loc, attn_metadata.seq_lens
    if starts.device.type == "cpu" and lens.device.type == "cpu":  # vLLM's CPU backend
        return starts, lens, int(starts.shape[0]) - 1
    warn_dense("no CPU-side batch layout in the attention metadata (reading it from the GPU would sync every layer)")
    return None


@functools.lru_cache(maxsize=8)
def _resolved(config_json: str) -> Any:
    from ctxagent.kernels.config import resolve_config

    return resolve_config(json.loads(config_json))


def sparse_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, config: dict[str, Any], *, scale: float, layer: int | None = None) -> torch.Tensor:
    """ctxagent.kernels' layer-level sparse prefill (Triton on CUDA, its torch reference on CPU)
    for q [1, H, n, D], k, v [1, Hkv, n, D], with the per-head patterns of `config` for `layer`."""
    from ctxagent.kernels.attention import sparse_prefill_attention

    resolved = _resolved(json.dumps(config, sort_keys=True))
    return sparse_prefill_attention(q, k, v, resolved, layer=layer or 0, scale=scale)


def attend_spans(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    output: torch.Tensor,
    spans: list[tuple[int, int]],
    config: dict[str, Any],
    *,
    scale: float,
    layer: int | None = None,
) -> None:
    """Write sparse-prefill attention for each span of the flat batch into `output` rows."""
    started = time.perf_counter()
    for start, end in spans:
        q = query[start:end].transpose(0, 1).unsqueeze(0)  # [1, H, n, D]
        k = key[start:end].transpose(0, 1).unsqueeze(0)
        v = value[start:end].transpose(0, 1).unsqueeze(0)
        out = sparse_prefill(q, k, v, config, scale=scale, layer=layer)  # [1, H, n, D]
        rows = output[start:end]
        rows.copy_(out[0].transpose(0, 1).reshape(rows.shape).to(rows.dtype))
        _calls["sparse_prefills"] += 1
        _calls["sparse_tokens"] += end - start
    _calls["sparse_seconds"] += time.perf_counter() - started


def layer_index(layer: Any) -> int | None:
    """The decoder layer number from a vLLM attention layer's name ("model.layers.3.self_attn.attn")."""
    name = getattr(layer, "layer_name", "") or ""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "layers" and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None
