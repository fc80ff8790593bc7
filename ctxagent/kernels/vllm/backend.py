"""vLLM attention backends with ctxagent sparse prefill; loaded by vLLM through the registry
entries that `ctxagent.kernels.vllm.plugin.register` makes (never imported otherwise).

Each backend is vLLM's own (FlashAttention on CUDA, CPU_ATTN on CPU) with one change in
`forward`: fresh prefills of at least `min_length` tokens are attended by ctxagent's sparse
prefill. When a step holds only such prefills, vLLM's kernel is not called at all; when it
mixes them with decodes or short prompts, vLLM's kernel runs for the step and the long
prefills' rows are then overwritten (correct, though that step gains nothing). KV-cache
writes are separate in vLLM's v1 backends (`do_kv_cache_update`), so decode later reads
the same cache either way.

Requests whose new tokens continue cached keys (prefix caching, chunked prefill) go sparse
too when they add at least MIN_SPARSE_QUERIES tokens to a long enough sequence: their keys
are read back from the paged cache, checked once per layer against the step's own keys.

No device sync: which requests are long prefills is read from CPU copies of the
batch layout that the metadata builder attaches (`ctxagent_layout`); the one check of the
cache layout per layer is the exception, on the first continued prefill. Layers whose
attention our kernels do not compute (sliding window, soft-capping, ALiBi, sinks) stay on
vLLM's kernel, with a logged reason. Under tensor parallelism each rank reads the config
for its own slice of the heads.
"""

from __future__ import annotations

from typing import Any

from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend, CPUAttentionBackendImpl, CPUAttentionMetadataBuilder

from ctxagent.kernels.attention import MIN_SPARSE_QUERIES
from ctxagent.kernels.vllm import prefill as vllm_prefill
from ctxagent.kernels.vllm.plugin import DEFAULT_MIN_LENGTH, active_config


class _SparsePrefillMixin:
    """forward() for any vLLM v1 attention impl whose metadata has query_start_loc and seq_lens
    (and block_table, for continued prefills); KV_LAYOUT names how its cache is laid out."""

    KV_LAYOUT = "cpu"

    def _sparse_setup(self) -> None:
        config = active_config() or {}
        first_head = 0
        try:
            from vllm.distributed import get_tensor_model_parallel_rank

            first_head = get_tensor_model_parallel_rank() * int(self.num_heads)  # type: ignore[attr-defined]
        except Exception:  # no distributed state (single process): rank 0
            pass
        self._sparse_config = vllm_prefill.rank_config(config, first_head, int(getattr(self, "num_heads", 0)))
        self._sparse_min = int(config.get("min_length", DEFAULT_MIN_LENGTH))
        self._cache_readable: list[bool] = []  # the verdict of the first read-back check
        reason = vllm_prefill.unsupported_reason(self)
        if reason:
            vllm_prefill.warn_dense(reason)
            self._sparse_min = 1 << 62

    def forward(self, layer: Any, query: Any, key: Any, value: Any, kv_cache: Any, attn_metadata: Any, output: Any, *args: Any, **kwargs: Any) -> Any:
        layout = None
        if attn_metadata is not None and key is not None and self._sparse_min < 1 << 62:
            layout = vllm_prefill.batch_layout(attn_metadata)
        if layout is None:
            return super().forward(layer, query, key, value, kv_cache, attn_metadata, output, *args, **kwargs)  # type: ignore[misc]
        starts, lens, num_reqs = layout
        spans = vllm_prefill.fresh_prefill_spans(starts, lens, num_reqs, self._sparse_min)
        continued = []
        if kv_cache is not None and getattr(attn_metadata, "block_table", None) is not None and self._cache_readable != [False]:
            continued = vllm_prefill.continuing_prefill_spans(starts, lens, num_reqs, self._sparse_min, MIN_SPARSE_QUERIES)
        if not spans and not continued:
            return super().forward(layer, query, key, value, kv_cache, attn_metadata, output, *args, **kwargs)  # type: ignore[misc]
        covered = sum(e - s for s, e in spans) + sum(e - s for _, s, e, _ in continued)
        if covered < int(attn_metadata.num_actual_tokens):
            super().forward(layer, query, key, value, kv_cache, attn_metadata, output, *args, **kwargs)  # type: ignore[misc]
        layer_no = vllm_prefill.layer_index(layer)
        scale = float(self.scale)  # type: ignore[attr-defined]
        if continued and not vllm_prefill.attend_continuations(
            query, key, kv_cache, attn_metadata.block_table, output, continued, self._sparse_config,
            layout=self.KV_LAYOUT, scale=scale, layer=layer_no, verified=self._cache_readable,
        ):
            if covered == int(attn_metadata.num_actual_tokens):  # vLLM's kernel has not run for them yet
                super().forward(layer, query, key, value, kv_cache, attn_metadata, output, *args, **kwargs)  # type: ignore[misc]
        vllm_prefill.attend_spans(query, key, value, output, spans, self._sparse_config, scale=scale, layer=layer_no)
        return output


class SparseCPUAttentionImpl(_SparsePrefillMixin, CPUAttentionBackendImpl):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sparse_setup()


class SparseCPUAttentionMetadataBuilder(vllm_prefill.LayoutBuilderMixin, CPUAttentionMetadataBuilder):
    pass


class SparseCPUAttentionBackend(CPUAttentionBackend):
    @staticmethod
    def get_impl_cls() -> type[SparseCPUAttentionImpl]:
        return SparseCPUAttentionImpl

    @staticmethod
    def get_builder_cls() -> type[SparseCPUAttentionMetadataBuilder]:
        return SparseCPUAttentionMetadataBuilder


try:  # the CUDA backend exists only in CUDA builds of vLLM
    from vllm.v1.attention.backends.flash_attn import FlashAttentionBackend, FlashAttentionImpl, FlashAttentionMetadataBuilder
except ImportError:  # pragma: no cover - CPU builds
    FlashAttentionBackend = FlashAttentionImpl = FlashAttentionMetadataBuilder = None  # type: ignore[assignment,misc]

if FlashAttentionImpl is not None:

    class SparseFlashAttentionImpl(_SparsePrefillMixin, FlashAttentionImpl):  # type: ignore[misc,valid-type]
        KV_LAYOUT = "flash"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._sparse_setup()

    class SparseFlashAttentionMetadataBuilder(vllm_prefill.LayoutBuilderMixin, FlashAttentionMetadataBuilder):  # type: ignore[misc,valid-type]
        pass

    class SparseFlashAttentionBackend(FlashAttentionBackend):  # type: ignore[misc,valid-type]
        @staticmethod
        def get_name() -> str:
            return "CUSTOM"

        @staticmethod
        def get_impl_cls() -> type[SparseFlashAttentionImpl]:
            return SparseFlashAttentionImpl

        @staticmethod
        def get_builder_cls() -> type[SparseFlashAttentionMetadataBuilder]:
            return SparseFlashAttentionMetadataBuilder
