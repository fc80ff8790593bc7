"""Chunked prefill on the embedded model (SmolLM2-135M, CPU): a prompt prefilled a chunk
at a time over its cached keys gives the same last logits and greedy answers as one
forward, dense and sparse (where the sparse chunks really run sparse)."""

from __future__ import annotations

import pytest
import torch

from ctxagent.engines.base import SamplingParams
from ctxagent.errors import InputError
from ctxagent.kernels.chunked_prefill import chunked_prefill
from ctxagent.kernels.hf_integration import ATTN_NAME, disable_sparse_prefill, enable_sparse_prefill
from tests.test_hf_sparse import PROMPT


def last_logits(model, ids) -> torch.Tensor:
    with torch.inference_mode():
        return model(ids, use_cache=True, logits_to_keep=1).logits[0, -1].float()


@pytest.fixture
def prompt_ids(engine_2k):
    ids = engine_2k.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    assert ids.shape[1] > 400
    return ids


def test_chunks_give_the_logits_of_one_forward(engine_2k, prompt_ids):
    model = engine_2k.model
    whole = last_logits(model, prompt_ids)
    for chunk in (100, 128, 1000):  # uneven last chunk, and one chunk for everything
        cache, logits = chunked_prefill(model, prompt_ids, chunk)
        assert cache.get_seq_length() == prompt_ids.shape[1]
        assert torch.allclose(logits[0].float(), whole, atol=2e-3, rtol=1e-3), chunk
    # the causal alignment matters: a chunk that saw the wrong keys would not match
    _, shifted = chunked_prefill(model, prompt_ids[:, 1:], 128)
    assert (shifted[0].float() - whole).abs().max() > 1e-2


def test_sparse_chunks_run_sparse_over_cached_keys(engine_2k, prompt_ids):
    model = engine_2k.model
    dense = last_logits(model, prompt_ids)
    before = model.config._attn_implementation
    try:
        covering = enable_sparse_prefill(model, {"kind": "a_shape", "sink": 16, "local": 4096, "min_length": 256, "block": 16, "dense_tail": 0}, backend="torch")
        _, logits = chunked_prefill(model, prompt_ids, 150)
        # chunks 2 and 3 reach 256 keys with >= 128 queries: sparse in every layer; chunk 1 and the rest dense
        assert covering.calls["sparse"] >= model.config.num_hidden_layers
        assert torch.allclose(logits[0].float(), dense, atol=2e-3, rtol=1e-3)
        narrow = enable_sparse_prefill(model, {"kind": "a_shape", "sink": 4, "local": 32, "min_length": 256, "block": 16, "dense_tail": 0}, backend="torch")
        _, logits = chunked_prefill(model, prompt_ids, 150)
        assert narrow.calls["sparse"] >= model.config.num_hidden_layers
        assert (logits[0].float() - dense).abs().max() > 1e-2
    finally:
        disable_sparse_prefill(model, before if before != ATTN_NAME else "sdpa")


def test_engine_prefill_chunk_answers_as_unchunked(engine_2k, monkeypatch):
    from ctxagent.engines import get_engine

    params = SamplingParams(max_new_tokens=12)
    prompts = [PROMPT, "Question: What is two plus two? Answer with a number."]  # one chunked, one short, in one batch
    plain = engine_2k.generate(prompts, params)
    monkeypatch.setattr(engine_2k, "prefill_chunk", 128)  # the same model, its prompts now prefilled 128 tokens at a time
    got = engine_2k.generate(prompts, params)
    assert [c.text for c in got] == [c.text for c in plain]
    assert "7342" in got[0].text
    assert got[0].prompt_tokens == plain[0].prompt_tokens
    with pytest.raises(InputError, match="prefill_chunk"):
        get_engine("hf", context_window=2048, prefill_chunk=0)
