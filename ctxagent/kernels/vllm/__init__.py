"""Sparse prefill inside vLLM: the glue between ctxagent's kernels and vLLM's attention backends.

- `plugin`: the `vllm.general_plugins` entry point (`register`), and the config that travels to
  vLLM's processes in $CTXAGENT_VLLM_SPARSE (VLLMEngine(sparse_prefill=...) sets it up);
- `prefill`: which requests of a step are long fresh prefills, and running them through
  `ctxagent.kernels.attention` (torch only, tested without vLLM);
- `backend`: vLLM's FlashAttention / CPU attention backends with the sparse path, imported only
  by vLLM through the registry entries `plugin.register` makes.

Nothing here is imported by `import ctxagent` or `import ctxagent.kernels`, and this package
imports vLLM only inside `backend` (and `plugin.register`), so it loads without vLLM.
"""
