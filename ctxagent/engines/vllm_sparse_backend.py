"""vLLM attention backends with ctxagent sparse prefill; loaded by vLLM through the registry
entries that `ctxagent.engines.vllm_plugin.register` makes (never imported otherwise).

Each backend is vLLM's own (FlashAttention on CUDA, CPU_ATTN on CPU) with one change in
`forward`: fresh prefills of at least `min_length` tokens are attended by ctxagent's sparse
prefill. When a step holds only such prefills, vLLM's kernel is not called at all; when it
mixes them with decodes or short prompts, vLLM's kernel runs for the step and the long
prefills' rows are then overwritten (correct, though that step gains nothing). KV-cache
writes are separate in vLLM's v1 backends (`do_kv_cache_update`), so decode later reads
the same cache either way.
"""

from __future__ import annotations

from typing import Any

from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend, CPUAttentionBackendImpl

from ctxagent.engines import vllm_prefill
from ctxagent.engines.vllm_plugin import DEFAULT_MIN_LENGTH, active_config


class _SparsePrefillMixin:
    """forward() for any vLLM v1 attention impl whose metadata has query_start_loc and seq_lens."""

    def _sparse_setup(self) -> None:
        self._sparse_config = active_config() or {}
        self._sparse_min = int(self._sparse_config.get("min_length", DEFAULT_MIN_LENGTH))

    def forward(self, layer: Any, query: Any, key: Any, value: Any, kv_cache: Any, attn_metadata: Any, output: Any, *args: Any, **kwargs: Any) -> Any:
        if attn_metadata is None or getattr(self, "attn_type", "decoder") != "decoder" or key is None:
            return super().forward(layer, query, key, value, kv_cache, attn_metadata, output, *args, **kwargs)  # type: ignore[misc]
        num_reqs = int(attn_metadata.query_start_loc.shape[0]) - 1
        spans = vllm_prefill.fresh_prefill_spans(attn_metadata.query_start_loc, attn_metadata.seq_lens, num_reqs, self._sparse_min)
        if not spans:
            return super().forward(layer, query, key, value, kv_cache, attn_metadata, output, *args, **kwargs)  # type: ignore[misc]
        covered = sum(e - s for s, e in spans)
        if covered < int(attn_metadata.num_actual_tokens):
            super().forward(layer, query, key, value, kv_cache, attn_metadata, output, *args, **kwargs)  # type: ignore[misc]
        vllm_prefill.attend_spans(
            query, key, value, output, spans, self._sparse_config, scale=float(self.scale), layer=vllm_prefill.layer_index(layer)  # type: ignore[attr-defined]
        )
        return output


class SparseCPUAttentionImpl(_SparsePrefillMixin, CPUAttentionBackendImpl):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sparse_setup()


class SparseCPUAttentionBackend(CPUAttentionBackend):
    @staticmethod
    def get_impl_cls() -> type[SparseCPUAttentionImpl]:
        return SparseCPUAttentionImpl


try:  # the CUDA backend exists only in CUDA builds of vLLM
    from vllm.v1.attention.backends.flash_attn import FlashAttentionBackend, FlashAttentionImpl
except ImportError:  # pragma: no cover - CPU builds
    FlashAttentionBackend = FlashAttentionImpl = None  # type: ignore[assignment,misc]

if FlashAttentionImpl is not None:

    class SparseFlashAttentionImpl(_SparsePrefillMixin, FlashAttentionImpl):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._sparse_setup()

    class SparseFlashAttentionBackend(FlashAttentionBackend):  # type: ignore[misc,valid-type]
        @staticmethod
        def get_name() -> str:
            return "CUSTOM"

        @staticmethod
        def get_impl_cls() -> type[SparseFlashAttentionImpl]:
            return SparseFlashAttentionImpl
