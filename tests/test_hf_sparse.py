"""Sparse prefill inside the embedded model (SmolLM2-135M, CPU), through transformers'
attention interface: same answer as dense on a needle question when the pattern is dense
enough, and the patterns' recall on the model's real attention maps.

CPU runs the torch reference of the kernels (backend="torch"); the Triton kernels
themselves are checked against it in test_kernels.py."""

from __future__ import annotations

import pytest
import torch

from ctxagent.engines.base import SamplingParams
from ctxagent.kernels.config import HeadPattern, SparseConfig
from ctxagent.kernels.hf_integration import ATTN_NAME, disable_sparse_prefill, enable_sparse_prefill
from ctxagent.kernels.search import search_config

FILLER = " ".join(
    f"On day {i} the harbour office logged {3 + i % 5} arrivals, the weather stayed mild and the market was quiet."
    for i in range(18)
)
DOC = FILLER[: len(FILLER) // 2] + " The secret code for the vault is 7342. " + FILLER[len(FILLER) // 2 :]
PROMPT = DOC + "\n\nQuestion: What is the secret code for the vault? Answer with the number."
# Blocks of 16 so a ~450-token prompt has 28 of them. Dense enough to keep the answer:
# 96 columns and 10 block diagonals (160 tokens) per head, about half the causal matrix.
PATTERN = {"kind": "vertical_slash", "n_vertical": 96, "n_diag": 10, "last_q": 32, "min_length": 256, "block": 16}


@pytest.fixture
def sparse_engine(engine_2k):
    """The shared engine switched to sparse prefill for one test, then switched back."""
    model = engine_2k.model
    before = model.config._attn_implementation
    settings = enable_sparse_prefill(model, PATTERN, backend="torch")
    try:
        yield engine_2k, settings
    finally:
        disable_sparse_prefill(model, before if before != ATTN_NAME else "sdpa")


def test_sparse_prefill_answers_like_dense(sparse_engine):
    engine, settings = sparse_engine
    n_tokens = engine.count_tokens(PROMPT)
    assert 300 < n_tokens < 1024
    params = SamplingParams(max_new_tokens=12)
    sparse = engine.generate([PROMPT], params)[0].text
    layers = engine.model.config.num_hidden_layers
    assert settings.calls["sparse"] == layers  # the prefill really went through the sparse path, every layer
    assert settings.calls["dense"] > 0  # and decode steps through SDPA
    settings.config.min_length = 1 << 30  # the same model, dense prefill
    dense = engine.generate([PROMPT], params)[0].text
    assert "7342" in dense
    assert sparse == dense


def test_pattern_recall_on_real_attention_maps(engine_2k):
    ids = engine_2k.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    candidates = (
        HeadPattern.make("a_shape", sink=16, local=64),
        HeadPattern.make("block_sparse", gamma=0.9, max_blocks=8),
        HeadPattern.make("vertical_slash", n_vertical=32, n_diag=3, last_q=32),
        HeadPattern.make("vertical_slash", n_vertical=96, n_diag=10, last_q=32),
    )  # each head's cheapest pattern with recall >= 0.95 is picked; the last is the densest
    before = engine_2k.model.config._attn_implementation
    result = search_config(engine_2k.model, ids, target_recall=0.95, candidates=candidates, rows=16, block=16, min_length=256)
    assert engine_2k.model.config._attn_implementation == before  # search leaves the model as it found it
    print(f"\nrecall on SmolLM2's attention maps, {ids.shape[1]} tokens (mean over 30 layers x 9 heads, 17 rows):")
    for pattern, (recall, density) in result.candidate_recall.items():
        print(f"  {pattern.to_dict()}: recall {recall:.3f}, density {density:.3f}")
    print("  chosen per head:", result.summary())
    recall = {p.to_dict()["kind"] + str(i): r for i, (p, (r, _)) in enumerate(result.candidate_recall.items())}
    assert all(0.0 < r <= 1.0 + 1e-6 for r in recall.values())
    # the denser vertical-slash budget keeps more of the real attention than the sparser one
    assert recall["vertical_slash3"] > recall["vertical_slash2"]
    assert recall["vertical_slash3"] > 0.9
    # every head got a pattern meeting the target, or dense
    layers = engine_2k.model.config.num_hidden_layers
    heads = engine_2k.model.config.num_attention_heads
    assert sorted(result.config.layers) == list(range(layers))
    for layer, chosen in result.choices.items():
        assert len(chosen) == heads
        for pattern, r, _ in chosen:
            assert pattern.kind == "dense" or r >= 0.95
    assert SparseConfig.from_dict(result.config.to_dict()).to_dict() == result.config.to_dict()


def test_prompt_after_a_cached_prefix_runs_sparse(engine_2k):
    """The second half of a prompt, prefilled over the cached first half (a shared system
    prompt, chunked prefill), goes through the sparse path: equal to dense when the
    pattern covers every key, different when it does not."""
    model = engine_2k.model
    ids = engine_2k.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    prefix, rest = ids[:, :200], ids[:, 200:]
    assert rest.shape[1] >= 128

    def continue_logits() -> torch.Tensor:
        with torch.no_grad():
            cache = model(prefix, use_cache=True).past_key_values
            return model(rest, past_key_values=cache, use_cache=True).logits[0, -1].float()

    before = model.config._attn_implementation
    dense = continue_logits()
    try:
        covering = enable_sparse_prefill(model, {"kind": "a_shape", "sink": 16, "local": 4096, "min_length": 256, "block": 16, "dense_tail": 0}, backend="torch")
        full = continue_logits()
        assert covering.calls["sparse"] == model.config.num_hidden_layers  # the continuation, every layer; the 200-token prefix stayed dense
        assert torch.allclose(full, dense, atol=2e-3, rtol=1e-3)
        narrow = enable_sparse_prefill(model, {"kind": "a_shape", "sink": 4, "local": 32, "min_length": 256, "block": 16, "dense_tail": 0}, backend="torch")
        sparse = continue_logits()
        assert narrow.calls["sparse"] == model.config.num_hidden_layers
        assert (sparse - dense).abs().max() > 1e-2
    finally:
        disable_sparse_prefill(model, before if before != ATTN_NAME else "sdpa")
