"""Sparse prefill in vLLM up to vLLM's import boundary: the plugin's switch and config, and the
torch code the backend runs (which rows of a step it takes, and the attention it writes).
These run without vLLM; tests/test_vllm_engine.py runs the same code inside real vLLM."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from ctxagent.kernels.vllm import plugin as vllm_plugin
from ctxagent.kernels.vllm import prefill as vllm_prefill


def causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_plugin_is_a_no_op_unless_configured(monkeypatch):
    monkeypatch.delenv(vllm_plugin.ENV_VAR, raising=False)
    monkeypatch.setitem(sys.modules, "vllm", None)  # importing vllm would fail: register must not try
    assert vllm_plugin.active_config() is None
    vllm_plugin.register()


def test_config_travels_as_json_with_a_threshold(monkeypatch, tmp_path):
    monkeypatch.setenv(vllm_plugin.ENV_VAR, "")  # recorded, so the variable is restored afterwards
    options = vllm_plugin.attention_options({"kind": "a_shape", "sink": 4, "local": 64}, on_cpu=True, context_window=16384)
    assert options == {"max_num_batched_tokens": 16384}
    assert vllm_plugin.active_config() == {"kind": "a_shape", "sink": 4, "local": 64, "min_length": 8192}
    assert vllm_plugin.attention_options(True, on_cpu=False)["attention_config"] == {"backend": "CUSTOM"}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"min_length": 100, "default": {"kind": "dense"}}))
    assert json.loads(vllm_plugin.config_to_json(path))["min_length"] == 100
    with pytest.raises(ValueError, match="min_length must be at least 1"):
        vllm_plugin.config_to_json({"min_length": 0})
    with pytest.raises(ValueError, match="sparse_prefill must be True, a dict"):
        vllm_plugin.config_to_json(3.5)
    monkeypatch.setenv(vllm_plugin.ENV_VAR, "{not json")
    with pytest.raises(ValueError, match="CTXAGENT_VLLM_SPARSE is not valid JSON"):
        vllm_plugin.active_config()


def test_only_whole_long_prefills_are_taken():
    # Requests in one step: a 300-token fresh prefill, a decode (1 new of 500), a 40-token fresh
    # prefill, and a 300-token chunk continuing a prefill (300 new of 700 in the sequence).
    query_start_loc = torch.tensor([0, 300, 301, 341, 641, 641])  # padded past the requests
    seq_lens = torch.tensor([300, 500, 40, 700, 0])
    assert vllm_prefill.fresh_prefill_spans(query_start_loc, seq_lens, 4, min_length=100) == [(0, 300)]
    assert vllm_prefill.fresh_prefill_spans(query_start_loc, seq_lens, 4, min_length=10) == [(0, 300), (301, 341)]
    # the continuing chunk is the one request that adds >= 128 tokens after cached keys
    assert vllm_prefill.continuing_prefill_spans(query_start_loc, seq_lens, 4, min_length=100, min_queries=128) == [(3, 341, 641, 700)]
    assert vllm_prefill.continuing_prefill_spans(query_start_loc, seq_lens, 4, min_length=800, min_queries=128) == []


@pytest.mark.parametrize("layout", ["cpu", "flash"])
def test_a_continued_prefill_reads_its_keys_from_the_paged_cache_and_attends_them(layout):
    """Keys written into a paged cache in vLLM's layout (CPU_ATTN or FlashAttention), in
    scattered blocks, read back in order; the new rows then attend the whole sequence as
    dense causal attention does when the pattern covers every key, and a cache that does
    not hold the step's keys is refused (nothing written)."""
    torch.manual_seed(1)
    heads, kv_heads, dim, bs, seq, new = 4, 2, 16, 32, 200, 140
    k_all, v_all = torch.randn(seq, kv_heads, dim), torch.randn(seq, kv_heads, dim)
    q_new = torch.randn(new, heads, dim)
    blocks = torch.tensor([5, 2, 7, 0, 3, 6, 1])  # 7 blocks of 32 hold 200 tokens
    if layout == "cpu":
        cache = torch.zeros(8, kv_heads, bs, 2 * dim)
        per_head = cache.view(8, kv_heads, 2, bs * dim)  # keys [dim, bs] then values [bs, dim]
        for t in range(seq):
            per_head[blocks[t // bs], :, 0].view(kv_heads, dim, bs)[:, :, t % bs] = k_all[t]
            per_head[blocks[t // bs], :, 1].view(kv_heads, bs, dim)[:, t % bs] = v_all[t]
    else:
        cache = torch.zeros(2, 8, bs, kv_heads, dim)
        for t in range(seq):
            cache[0, blocks[t // bs], t % bs] = k_all[t]
            cache[1, blocks[t // bs], t % bs] = v_all[t]
    k, v = vllm_prefill.cached_keys_values(cache, blocks, seq, layout)
    assert torch.equal(k, k_all) and torch.equal(v, v_all)
    # a step holding one decode row, then the continuing request's 140 new rows
    query = torch.cat([torch.randn(1, heads, dim), q_new])
    key = torch.cat([torch.randn(1, kv_heads, dim), k_all[seq - new :]])
    output = torch.full((1 + new, heads * dim), float("nan"))
    config = {"min_length": 64, "kind": "a_shape", "sink": 4, "local": 4096}
    block_table = torch.stack([torch.zeros(7, dtype=torch.long), blocks])
    verified: list[bool] = []
    spans = [(1, 1, 1 + new, seq)]
    assert vllm_prefill.attend_continuations(query, key, cache, block_table, output, spans, config, layout=layout, scale=dim**-0.5, verified=verified)
    assert verified == [True] and torch.isnan(output[0]).all()
    q = q_new.transpose(0, 1).unsqueeze(0)
    kk, vv = (x.transpose(0, 1).unsqueeze(0).repeat_interleave(2, 1) for x in (k_all, v_all))
    mask = torch.ones(new, seq, dtype=torch.bool).tril_(seq - new)
    expected = torch.nn.functional.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)[0].transpose(0, 1).reshape(new, -1)
    assert torch.allclose(output[1:], expected, atol=1e-5)
    # a cache that does not hold the step's keys: refused, the rows left for vLLM's kernel
    untouched = torch.full_like(output, float("nan"))
    refused: list[bool] = []
    assert not vllm_prefill.attend_continuations(
        query, key + 1, cache, block_table, untouched, spans, config, layout=layout, scale=dim**-0.5, verified=refused
    )
    assert refused == [False] and torch.isnan(untouched).all()


def test_spans_are_attended_in_place_and_match_dense_when_the_pattern_covers_everything():
    torch.manual_seed(0)
    heads, kv_heads, dim = 4, 2, 16
    lens = [37, 1, 50]
    total = sum(lens)
    query, key, value = torch.randn(total, heads, dim), torch.randn(total, kv_heads, dim), torch.randn(total, kv_heads, dim)
    output = torch.full((total, heads * dim), 7.0)  # vLLM hands a flat [tokens, heads*dim] buffer
    spans = [(0, 37), (38, 88)]
    before = vllm_prefill.stats()["sparse_prefills"]
    covering = {"min_length": 16, "block": 16, "kind": "a_shape", "sink": 16, "local": 128}
    vllm_prefill.attend_spans(query, key, value, output, spans, covering, scale=dim**-0.5)
    assert vllm_prefill.stats()["sparse_prefills"] == before + 2
    for start, end in spans:
        q, k, v = (x[start:end].transpose(0, 1).unsqueeze(0) for x in (query, key, value))
        expected = causal(q, k, v)[0].transpose(0, 1).reshape(end - start, heads * dim)
        torch.testing.assert_close(output[start:end], expected, atol=1e-5, rtol=1e-5)
    assert torch.all(output[37] == 7.0), "rows outside the spans (the decode) are left to vLLM's kernel"


def test_a_narrow_pattern_is_really_sparse_and_per_layer_configs_apply():
    torch.manual_seed(1)
    n, dim = 256, 16
    query, key, value = torch.randn(n, 2, dim), torch.randn(n, 1, dim), torch.randn(n, 1, dim)
    q, k, v = (x.transpose(0, 1).unsqueeze(0) for x in (query, key, value))
    dense = causal(q, k, v)[0].transpose(0, 1).reshape(n, 2 * dim)
    narrow = {"min_length": 64, "block": 16, "dense_tail": 0, "default": {"kind": "a_shape", "sink": 16, "local": 32}, "layers": {"3": [{"kind": "dense"}] * 2}}
    out = torch.zeros(n, 2 * dim)
    vllm_prefill.attend_spans(query, key, value, out, [(0, n)], narrow, scale=dim**-0.5, layer=0)
    assert torch.isfinite(out).all() and not torch.allclose(out, dense, atol=1e-3)
    torch.testing.assert_close(out[:48], dense[:48], atol=1e-5, rtol=1e-5)  # rows whose keys all lie in sink + window
    vllm_prefill.attend_spans(query, key, value, out, [(0, n)], narrow, scale=dim**-0.5, layer=3)  # layer 3 is dense
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)


def test_layer_index_from_vllm_layer_names():
    class Layer:
        layer_name = "model.layers.17.self_attn.attn"

    assert vllm_prefill.layer_index(Layer()) == 17
    assert vllm_prefill.layer_index(object()) is None


def test_spans_are_read_from_cpu_tensors_only():
    starts, lens = torch.tensor([0, 300, 301, 700]), torch.tensor([300, 57, 900])
    # request 0: a whole 300-token prompt; 1: a decode step; 2: a chunk after 500 cached tokens
    assert vllm_prefill.fresh_prefill_spans(starts, lens, 3, 256) == [(0, 300)]
    with pytest.raises(ValueError, match="needs CPU tensors"):
        vllm_prefill.fresh_prefill_spans(starts.to("meta"), lens, 3, 256)


def test_attention_variants_we_do_not_compute_stay_on_vllm_kernels():
    from types import SimpleNamespace as Impl

    plain = dict(attn_type="decoder", sliding_window=-1, logits_soft_cap=0, alibi_slopes=None, sinks=None)
    assert vllm_prefill.unsupported_reason(Impl(**plain)) is None
    assert vllm_prefill.unsupported_reason(Impl(**{**plain, "sliding_window": (-1, -1)})) is None  # FlashAttention's "none"
    assert "sliding window" in vllm_prefill.unsupported_reason(Impl(**{**plain, "sliding_window": (4095, 0)}))
    assert "soft-capping" in vllm_prefill.unsupported_reason(Impl(**{**plain, "logits_soft_cap": 30.0}))
    assert "ALiBi" in vllm_prefill.unsupported_reason(Impl(**{**plain, "alibi_slopes": torch.ones(4)}))
    assert "sinks" in vllm_prefill.unsupported_reason(Impl(**{**plain, "sinks": torch.zeros(4)}))
    assert "encoder" in vllm_prefill.unsupported_reason(Impl(**{**plain, "attn_type": "encoder"}))


def test_each_tensor_parallel_rank_reads_its_own_heads():
    config = {"min_length": 8192, "layers": {"0": [{"kind": "dense"}, {"kind": "a_shape"}, {"kind": "vertical_slash"}, {"kind": "block_sparse"}]}}
    assert vllm_prefill.rank_config(config, 0, 2) == config
    rank1 = vllm_prefill.rank_config(config, 2, 2)
    assert rank1["layers"]["0"] == [{"kind": "vertical_slash"}, {"kind": "block_sparse"}]
    assert rank1["min_length"] == 8192 and config["layers"]["0"][0] == {"kind": "dense"}  # the original is untouched


def test_sparse_prefill_raises_the_step_budget_even_without_a_window(monkeypatch):
    monkeypatch.setenv(vllm_plugin.ENV_VAR, "")
    assert vllm_plugin.attention_options(True, on_cpu=True, context_window=32768)["max_num_batched_tokens"] == 32768
    # no window given: chunked prefill off, so vLLM sizes the step budget to the model's window
    assert vllm_plugin.attention_options(True, on_cpu=True)["enable_chunked_prefill"] is False


def test_builder_attaches_the_cpu_layout_and_steps_never_read_device_tensors():
    from types import SimpleNamespace

    class Builder:  # stands in for vLLM's metadata builder
        def build(self, common_prefix_len, common, fast_build=False):
            return SimpleNamespace(query_start_loc=common.query_start_loc, seq_lens=common.seq_lens)

    class Sparse(vllm_prefill.LayoutBuilderMixin, Builder):
        pass

    device = torch.device("meta")  # any non-CPU tensor: reading it would be a device sync
    common = SimpleNamespace(
        query_start_loc=torch.tensor([0, 300, 301]).to(device),
        seq_lens=torch.tensor([300, 57]).to(device),
        query_start_loc_cpu=torch.tensor([0, 300, 301]),
        seq_lens_cpu_upper_bound=torch.tensor([300, 57]),
        num_reqs=2,
    )
    metadata = Sparse().build(0, common)
    starts, lens, num_reqs = vllm_prefill.batch_layout(metadata)
    assert starts.device.type == "cpu" and num_reqs == 2
    assert vllm_prefill.fresh_prefill_spans(starts, lens, num_reqs, 256) == [(0, 300)]
    # without the CPU copies: no sparse path (and no sync), rather than reading the device
    bare = Builder().build(0, common)
    assert vllm_prefill.batch_layout(bare) is None
