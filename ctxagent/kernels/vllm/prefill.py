"""The torch half of sparse prefill in vLLM: which rows of a step to take, and how to attend them.

Kept apart from the vLLM backend classes so it imports only torch and is tested without vLLM.
vLLM hands an attention backend one flat batch per step: `query [tokens, heads, dim]`,
`key/value [tokens, kv_heads, dim]` for the new tokens, `query_start_loc` (cumulative
query lengths, one more entry than requests) and `seq_lens` (tokens in each request's
sequence, cached plus new). A request is a *fresh prefill* when all of its tokens are
new in this step (query length == sequence length): then its keys and values are all in
this step's `key`/`value`, and causal self-attention over them is exactly its prefill.
A request *continues* cached keys when its new tokens follow keys already in the paged KV
cache (prefix caching: a shared system prompt or document; chunked prefill: every chunk
after the first). vLLM writes the step's keys into the cache before attention runs, so
the whole sequence's keys are read back from the cache through the request's block
table, and its new rows attend them as the last Nq of Nk positions.

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
_calls: dict[str, float] = {"sparse_prefills": 0, "sparse_continuations": 0, "sparse_tokens": 0, "sparse_seconds": 0.0}


def stats() -> dict[str, float]:
    """How many prefills (fresh, and continuing cached keys), tokens and seconds went through
    the sparse path in this process."""
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


def continuing_prefill_spans(
    query_start_loc: torch.Tensor, seq_lens: torch.Tensor, num_reqs: int, min_length: int, min_queries: int
) -> list[tuple[int, int, int, int]]:
    """(request, start, end, sequence length) of requests adding at least `min_queries` new
    tokens after cached keys, in a sequence of at least `min_length` tokens. CPU tensors,
    as `fresh_prefill_spans`."""
    if query_start_loc.device.type != "cpu" or seq_lens.device.type != "cpu":
        raise ValueError("continuing_prefill_spans needs CPU tensors (vLLM's query_start_loc_cpu and seq_lens_cpu_upper_bound)")
    starts = query_start_loc[: num_reqs + 1].tolist()
    lens = seq_lens[:num_reqs].tolist()
    spans = []
    for r in range(num_reqs):
        start, end, total = int(starts[r]), int(starts[r + 1]), int(lens[r])
        if min_queries <= end - start < total and total >= min_length:
            spans.append((r, start, end, total))
    return spans


def cached_keys_values(kv_cache: torch.Tensor, blocks: torch.Tensor, seq_len: int, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values [seq_len, kv_heads, head_dim] of one request, read from vLLM's paged
    cache through its block ids `blocks` (the first ceil(seq_len / block_size) of its row
    of the block table). `layout`: "cpu" for CPU_ATTN's [blocks, kv_heads, block_size,
    2 * head_dim], where each (block, head) holds its keys transposed [head_dim,
    block_size] and then its values [block_size, head_dim] (as vLLM 0.32's vector kernels
    write them; its AMX path packs them otherwise and fails `attend_continuations`'
    read-back check); "flash" for FlashAttention's [2, blocks, block_size, kv_heads, head_dim]."""
    if layout == "cpu":
        nb, kvh, bs, two_d = kv_cache.shape
        d = two_d // 2
        n = -(-seq_len // bs)
        per_head = kv_cache.view(nb, kvh, 2, bs * d)[blocks[:n]]  # [n, kvh, 2, bs * d], a copy
        k = per_head[:, :, 0].reshape(n, kvh, d, bs).permute(0, 3, 1, 2).reshape(n * bs, kvh, d)[:seq_len]
        v = per_head[:, :, 1].reshape(n, kvh, bs, d).permute(0, 2, 1, 3).reshape(n * bs, kvh, d)[:seq_len]
        return k, v
    if layout == "flash":
        _, nb, bs, kvh, d = kv_cache.shape
        n = -(-seq_len // bs)
        return kv_cache[0][blocks[:n]].reshape(n * bs, kvh, d)[:seq_len], kv_cache[1][blocks[:n]].reshape(n * bs, kvh, d)[:seq_len]
    raise ValueError(f"unknown KV-cache layout {layout!r}; expected 'cpu' or 'flash'")


def attend_continuations(
    query: torch.Tensor,
    key: torch.Tensor,
    kv_cache: torch.Tensor,
    block_table: torch.Tensor,
    output: torch.Tensor,
    spans: list[tuple[int, int, int, int]],
    config: dict[str, Any],
    *,
    layout: str,
    scale: float,
    layer: int | None = None,
    verified: list[bool],
) -> bool:
    """Sparse prefill for requests continuing cached keys (see `continuing_prefill_spans`),
    written into `output` rows. The first time (per layer: `verified` holds its verdict),
    the step's new keys read back from the cache must equal the keys vLLM passed in; if
    they do not (a packed or quantised cache layout we cannot read), returns False without
    writing anything, and the caller leaves these requests to vLLM's kernel."""
    started = time.perf_counter()
    for request, start, end, seq_len in spans:
        k, v = cached_keys_values(kv_cache, block_table[request], seq_len, layout)
        if not verified:
            verified.append(k.dtype == key.dtype and torch.equal(k[seq_len - (end - start) :], key[start:end]))
            if not verified[0]:
                warn_dense(f"a KV cache whose layout ctxagent cannot read back ({layout}, {kv_cache.dtype}); continued prefills")
        if not verified[0]:
            return False
        attend_rows(query[start:end], k, v, output[start:end], config, scale=scale, layer=layer)
        _calls["sparse_continuations"] += 1
        _calls["sparse_tokens"] += end - start
    _calls["sparse_seconds"] += time.perf_counter() - started
    return True


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


def attend_rows(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, rows: torch.Tensor, config: dict[str, Any], *, scale: float, layer: int | None = None
) -> None:
    """Sparse prefill of one request in vLLM's token-major layout: query [n, H, D], the last n
    of key/value [N, Hkv, D]; the result written into `rows` (its slice of the output)."""
    def heads_first(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1).unsqueeze(0)  # [1, heads, tokens, D]

    out = sparse_prefill(heads_first(query), heads_first(key), heads_first(value), config, scale=scale, layer=layer)
    rows.copy_(out[0].transpose(0, 1).reshape(rows.shape).to(rows.dtype))


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
        attend_rows(query[start:end], key[start:end], value[start:end], output[start:end], config, scale=scale, layer=layer)
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
