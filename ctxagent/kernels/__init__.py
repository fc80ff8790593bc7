"""Sparse prefill: Triton kernels for A-shape, vertical-slash and block-sparse causal
attention, the GPU index builders that choose what to compute, per-head pattern configs,
and the transformers integration (attn_implementation="ctxagent_sparse").

Modules (import what you need; nothing here is imported by `import ctxagent`):

- `index`, `block_score`: build a SparseIndex from q/k (torch, on the inputs' device)
- `sparse_attn.sparse_attention(q, k, v, index)`: the Triton kernel (torch reference on CPU)
- `attention.sparse_prefill_attention(q, k, v, config, layer)`: per-head patterns, dense
  below `config.min_length` and for decode
- `config`: per-head patterns as JSON; `search`: pick them by attention recall
- `hf_integration.enable_sparse_prefill(model, spec)`: switch a transformers model over
- `reference`: plain-torch ground truth and recall; `synthetic`: structured test inputs
- `vllm/`: the same kernels as a vLLM attention backend, and the plugin that registers it

This package imports neither pydantic nor the rest of ctxagent (beyond `ctxagent.envs`, which
needs only the standard library), so it runs on its own (e.g. on a GPU box with only torch and
triton); `search`'s command line alone loads a model through an engine.
"""
