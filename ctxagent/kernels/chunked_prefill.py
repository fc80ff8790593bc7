"""Chunked prefill for a transformers decoder: the prompt goes through the model
`chunk` tokens at a time, each chunk's queries continuing the keys cached so far.

Why: a whole-prompt forward holds every layer's activations for every prompt token at
once; an 8B-shaped model's MLP alone takes 14 GiB per activation at 512K tokens, which
runs an 80 GB GPU out of memory before attention matters. Per chunk, activations are
the chunk's; the KV cache (which the answer needs anyway) is what grows. Only the last
position's logits are computed (`logits_to_keep=1`), never the whole prompt's.

With sparse prefill on (`hf_integration.enable_sparse_prefill`), each chunk of at least
`attention.MIN_SPARSE_QUERIES` queries whose keys reach `min_length` runs sparse over
the cached keys (the index is built for the chunk's queries: Nq < Nk), and the dense
ones use SDPA with a lower-right causal bias; `hf_integration` registers a mask builder
that hands no [chunk, keys] mask to either (it would be 32 GB for a 32K chunk at 1M keys).
"""

from __future__ import annotations

from typing import Any

import torch


def chunked_prefill(model: Any, input_ids: torch.Tensor, chunk: int, cache: Any = None) -> tuple[Any, torch.Tensor]:
    """Run `input_ids` [1, N] through `model` `chunk` tokens at a time (after whatever
    `cache` holds). Returns the KV cache and the logits of the last position [1, vocab]."""
    if input_ids.shape[0] != 1:
        raise ValueError(f"chunked prefill takes one sequence at a time (no padding); got a batch of {input_ids.shape[0]}")
    if chunk < 1:
        raise ValueError(f"prefill chunk must be a positive number of tokens; got {chunk}")
    if cache is None:
        from transformers import DynamicCache

        try:
            cache = DynamicCache(config=model.config)  # per-layer kinds (sliding windows) from the config
        except TypeError:  # a transformers release without the argument
            cache = DynamicCache()
    n = input_ids.shape[1]
    logits = None
    with torch.inference_mode():
        for start in range(0, n, chunk):
            out = model(input_ids=input_ids[:, start : start + chunk], past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache, logits = out.past_key_values, out.logits[:, -1]
            del out
    if logits is None:
        raise ValueError("chunked prefill got an empty prompt")
    return cache, logits
