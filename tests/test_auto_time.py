"""`auto` that respects time: engine speeds measured and cached, the interactive time budget
and its lift, auto's plan under time budgets, effective context, large documents
(cached chunks and indexes, progress output). Control flow uses scripted engines with a
set speed; speed, indexing and the end-to-end answer use the real engine and retrievers."""

from __future__ import annotations

import time
from typing import Sequence

import pytest

from ctxagent import Budget, ContextAgent
from ctxagent.chunking import LARGE_DOCUMENT_CHARS, chunk_document, estimate_tokens
from ctxagent.engines.base import Completion, Prompt, SamplingParams, render_messages
from ctxagent.engines.reach import default_reach, effective_context, store_effective_context
from ctxagent.engines.speed import EngineSpeed, cached_speed, engine_key, engine_speed, measure_speed
from ctxagent.evaluation.haystack import haystack_text
from ctxagent.recipes import get_recipe
from ctxagent.recipes.context import RunContext
from ctxagent.types import INTERACTIVE_MAX_SECONDS, Document
from tests.fakes import ScriptedEngine

QUESTION = "What is the secret code to open the blue vault?"
NEEDLE = "The secret code to open the blue vault is 4817."


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Speeds, effective contexts, chunks and indexes go to a fresh cache per test; the
    converted model weights are shared with the session's cache."""
    import os
    from pathlib import Path

    real = Path(os.environ["CTXAGENT_CACHE"]) / "models"
    real.mkdir(parents=True, exist_ok=True)
    (tmp_path / "models").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("CTXAGENT_CACHE", str(tmp_path))


class TimedEngine(ScriptedEngine):
    """A scripted engine that takes the time a real one would at a set prefill and decode speed."""

    name = "timed"
    model_name = "timed-test"

    def __init__(self, prefill: float, decode: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefill, self.decode = prefill, decode

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None) -> list[Completion]:
        params = params or SamplingParams()
        texts = ["\n".join(m["content"] for m in render_messages(p)) for p in prompts]
        self.calls.append(texts)
        out = []
        for text in texts:
            n_in, n_out = self.count_tokens(text), params.max_new_tokens
            time.sleep(n_in / self.prefill + n_out / self.decode)
            out.append(Completion(text="word " * n_out, prompt_tokens=n_in, completion_tokens=n_out))
        return out


class SetSpeedEngine(ScriptedEngine):
    """A scripted engine that states its speed (as a measured engine would) without probing."""

    model_name = "set-speed"

    def __init__(self, prefill: float, decode: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self._speed = EngineSpeed(prefill_tokens_per_second=prefill, decode_tokens_per_second=decode, source="probe")

    def speed(self) -> EngineSpeed:
        return self._speed


# -- speeds -------------------------------------------------------------------------------------
def test_probe_measures_set_speeds_and_caches_them():
    engine = TimedEngine(prefill=20_000, decode=400, context_window=4096)
    speed = measure_speed(engine)
    assert speed.source == "probe"
    assert 10_000 < speed.prefill_tokens_per_second < 30_000, speed
    assert 250 < speed.decode_tokens_per_second < 450, speed
    calls = len(engine.calls)
    again = measure_speed(engine)
    assert again.source == "cache" and len(engine.calls) == calls  # no new probe
    assert again.prefill_tokens_per_second == pytest.approx(speed.prefill_tokens_per_second)
    assert cached_speed(engine_key(engine)) is not None
    measure_speed(engine, refresh=True)
    assert len(engine.calls) > calls


def test_engine_speed_without_probe_uses_stated_or_assumed_speed():
    plain = ScriptedEngine()
    assert engine_speed(plain).source == "assumed"
    plain.tokens_per_second = 5000  # type: ignore[attr-defined]
    assert engine_speed(plain).prefill_tokens_per_second == 5000


def test_real_engine_measures_its_speed_once(engine_2k):
    engine_2k._speed = None
    speed = engine_2k.speed()
    assert speed.prefill_tokens_per_second > speed.decode_tokens_per_second > 0
    assert speed.source in {"probe", "cache"}
    assert "SmolLM2" in speed.key and cached_speed(speed.key) is not None
    engine_2k._speed = None
    assert engine_2k.speed().source == "cache"


# -- the interactive time budget -----------------------------------------------------------------
def test_sdk_defaults_to_the_interactive_time_budget_and_lifts_it():
    assert Budget().max_seconds is None  # batch and eval: no limit unless asked
    assert ContextAgent(engine=ScriptedEngine()).budget.max_seconds == INTERACTIVE_MAX_SECONDS
    assert ContextAgent(engine=ScriptedEngine(), budget=Budget()).budget.max_seconds is None
    assert "max_seconds=None" in ContextAgent.__doc__


def test_sdk_says_when_the_default_time_budget_shaped_the_answer(monkeypatch):
    # So slow that no reading plan fits 60 s: the cheapest (direct, truncated) runs, and the note says why.
    engine = SetSpeedEngine(prefill=20, decode=1, reply=lambda p: "NONE", context_window=2048)
    answer = ContextAgent(engine=engine).ask(_long_doc(6_000), QUESTION)
    assert answer.recipe == "auto:direct"
    assert any("Budget(max_seconds=None)" in n and "--max-seconds 0" in n for n in answer.notes), answer.notes
    seen: list[Budget] = []
    monkeypatch.setattr("ctxagent.agent.run_recipe", lambda runner, ctx, docs, q: seen.append(ctx.budget) or ctx.answer("ok", recipe="auto"))
    lifted = ContextAgent(engine=engine).ask(_long_doc(6_000), QUESTION, budget=Budget(max_seconds=None))
    assert seen[0].max_seconds is None and not lifted.notes
    ContextAgent(engine=engine, budget=Budget(max_seconds=None)).ask(_long_doc(6_000), QUESTION)
    assert seen[1].max_seconds is None


def test_cli_states_the_default_and_zero_lifts_it(tmp_path, capsys, monkeypatch):
    from ctxagent.cli import build_parser, budget_from, main

    args = build_parser().parse_args(["ask", "f.txt", "q"])
    assert budget_from(args, INTERACTIVE_MAX_SECONDS).max_seconds == INTERACTIVE_MAX_SECONDS
    assert budget_from(build_parser().parse_args(["ask", "f.txt", "q", "--max-seconds", "0"]), INTERACTIVE_MAX_SECONDS).max_seconds is None
    assert budget_from(build_parser().parse_args(["batch", "c", "q.jsonl", "-o", "o.jsonl"])).max_seconds is None
    path = tmp_path / "doc.txt"
    path.write_text(NEEDLE)
    seen: list[Budget] = []

    class Recording(ScriptedEngine):
        def __init__(self, **_: object) -> None:
            super().__init__(reply=lambda p: NEEDLE)

    monkeypatch.setattr("ctxagent.agent.get_engine", lambda name, **o: Recording())
    monkeypatch.setattr("ctxagent.agent.run_recipe", lambda runner, ctx, docs, q: seen.append(ctx.budget) or ctx.answer("ok", recipe="auto"))
    assert main(["ask", str(path), "q"]) == 0
    err = capsys.readouterr().err
    assert f"{INTERACTIVE_MAX_SECONDS:g} s" in err and "--max-seconds 0" in err
    assert main(["ask", str(path), "q", "--max-seconds", "0"]) == 0
    assert "--max-seconds 0 lifts" not in capsys.readouterr().err
    assert [b.max_seconds for b in seen] == [INTERACTIVE_MAX_SECONDS, None]


# -- auto's plan under time budgets --------------------------------------------------------------
def _long_doc(words: int = 20_000) -> Document:
    sentences = [f"Sentence {i} tells of the harbour and the ships." for i in range(words // 9)]
    sentences.insert(len(sentences) // 2, NEEDLE)
    return Document(id="long", text=" ".join(sentences))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "map_reduce"), (10_000.0, "map_reduce"), (60.0, "retrieve_then_reason"), (0.5, "direct")],
)
def test_auto_picks_the_most_thorough_plan_that_fits_the_time(seconds, expected):
    engine = SetSpeedEngine(prefill=150, decode=10, context_window=2048)
    ctx = RunContext(engine=engine, budget=Budget(max_seconds=seconds))
    plan = get_recipe("auto").plan(ctx, [_long_doc()], QUESTION)
    assert plan.recipe == expected, plan.why
    assert "150 tok/s" in plan.why
    costs = {c.recipe: c.seconds for c in plan.candidates}
    assert costs["map_reduce"] > costs["retrieve_then_reason"]  # ordered by cost as by thoroughness
    if seconds == 60.0:
        assert "map_reduce ruled out" in plan.why and "max_seconds" in plan.why
    if seconds == 0.5:
        assert "no plan fits" in plan.why and "first" in plan.why  # the cheapest runs: direct, truncated


def test_faster_engine_reads_everything_within_the_same_budget():
    slow = get_recipe("auto").plan(RunContext(engine=SetSpeedEngine(150, 10, context_window=2048), budget=Budget(max_seconds=60)), [_long_doc()], QUESTION)
    fast = get_recipe("auto").plan(RunContext(engine=SetSpeedEngine(50_000, 500, context_window=2048), budget=Budget(max_seconds=60)), [_long_doc()], QUESTION)
    assert (slow.recipe, fast.recipe) == ("retrieve_then_reason", "map_reduce")


@pytest.mark.slow  # the real sentence encoder indexes a long document
def test_auto_trace_records_speed_candidates_and_why():
    engine = SetSpeedEngine(prefill=150, decode=10, reply=lambda p: "NONE", context_window=2048)
    ctx = RunContext(engine=engine, budget=Budget(max_seconds=60))
    answer = get_recipe("auto").run(ctx, [_long_doc()], QUESTION)
    plan = next(s for s in answer.trace.steps if s.name == "plan")
    assert plan.detail["speed"]["prefill_tokens_per_second"] == 150
    assert {c["recipe"] for c in plan.detail["candidates"]} == {"map_reduce", "retrieve_then_reason", "direct"}
    assert plan.detail["effective_context"]["source"] == "default"
    assert answer.recipe == "auto:retrieve_then_reason"


def test_chunks_follow_the_effective_context():
    engine = SetSpeedEngine(prefill=150, decode=10, context_window=8192)
    ctx = RunContext(engine=engine)
    assert effective_context(engine).tokens == default_reach(8192) == 2048
    before = get_recipe("auto").plan(ctx, [_long_doc()], QUESTION)
    store_effective_context(engine, 900, {512: 1.0, 1024: 0.4})
    assert effective_context(engine).source == "measured"
    after = get_recipe("auto").plan(ctx, [_long_doc()], QUESTION)
    assert before.options["chunk_tokens"] < 2048 and after.options["chunk_tokens"] < 900 < before.options["chunk_tokens"]
    short = Document(id="s", text=" ".join(["word"] * 1500))  # fits the window, not the measured reach
    assert get_recipe("auto").plan(ctx, [short], QUESTION).recipe == "map_reduce"


# -- large documents -----------------------------------------------------------------------------
def _big_text(chars: int) -> str:
    base = haystack_text("persuasion")
    paragraphs = [p for p in base.split("\n\n") if p.strip()]
    out, n, i = [], 0, 0
    while n < chars:
        p = f"{paragraphs[i % len(paragraphs)]} (copy {i // len(paragraphs)})"
        out.append(p)
        n += len(p) + 2
        i += 1
    return "\n\n".join(out)


def test_large_document_shows_progress_and_is_chunked_once(capsys, monkeypatch):
    import ctxagent.chunking as chunking

    doc = Document(id="big", text=_big_text(LARGE_DOCUMENT_CHARS + 10_000))
    count = lambda t: len(t.split())  # noqa: E731
    runs = []
    real = chunking._chunk
    monkeypatch.setattr(chunking, "_chunk", lambda *a, **k: runs.append(1) or real(*a, **k))
    first = chunk_document(doc, count, max_tokens=200)
    assert "chunking big" in capsys.readouterr().err
    second = chunk_document(doc, count, max_tokens=200)
    assert len(runs) == 1 and second == first
    chunk_document(doc, count, max_tokens=150)  # another size is another chunking
    assert len(runs) == 2
    capsys.readouterr()
    small = Document(id="small", text=_big_text(5_000))
    chunk_document(small, count, max_tokens=200)
    assert "chunking" not in capsys.readouterr().err


def test_token_estimate_of_a_large_document_is_close(engine_2k):
    text = _big_text(400_000)
    exact = engine_2k.count_tokens(text)
    assert abs(estimate_tokens(text, engine_2k.count_tokens) - exact) < 0.05 * exact


@pytest.mark.slow  # the real sentence encoder embeds a large index: many seconds on two cores
def test_large_index_is_built_once_and_embeds_only_a_shortlist(monkeypatch):
    from ctxagent.recipes import retrieval
    from ctxagent.retrievers.bm25 import BM25Retriever
    from ctxagent.retrievers.dense import DenseRetriever

    text = _big_text(300_000) + "\n\n" + NEEDLE
    doc = Document(id="big", text=text)
    chunks = chunk_document(doc, lambda t: len(t.split()), max_tokens=60)
    assert len(chunks) > retrieval.DENSE_ALL_MAX_CHUNKS
    builds, encoded = [], []
    real_build, real_encode = BM25Retriever._build, DenseRetriever.encode
    monkeypatch.setattr(BM25Retriever, "_build", lambda self, texts: builds.append(len(texts)) or real_build(self, texts))
    monkeypatch.setattr(DenseRetriever, "encode", lambda self, texts, *a, **k: encoded.append(len(texts)) or real_encode(self, texts, *a, **k))
    monkeypatch.setattr(retrieval, "_EMBEDDED", {})
    first = retrieval.ChunkIndex("hybrid", chunks)
    hits = first.search(QUESTION, 4)
    assert chunks[hits[0][0]].text.endswith(NEEDLE)
    assert builds == [len(chunks)]
    assert sum(encoded) <= retrieval.SHORTLIST + 1  # the shortlist and the query, never every chunk
    second = retrieval.ChunkIndex("hybrid", chunks)  # the next question: index loaded, nothing re-embedded
    assert second.search(QUESTION, 4) == hits
    assert builds == [len(chunks)] and sum(encoded) <= retrieval.SHORTLIST + 2


# -- end to end on the embedded model ------------------------------------------------------------
@pytest.mark.slow
def test_auto_answers_within_the_default_budget_with_the_embedded_model(engine_2k):
    paragraphs, tokens = [], 0
    for paragraph in haystack_text("persuasion").split("\n\n"):
        paragraphs.append(paragraph)
        tokens += engine_2k.count_tokens(paragraph) + 1
        if tokens > 4 * 2048:
            break
    paragraphs.insert(int(0.6 * len(paragraphs)), NEEDLE)
    doc = Document(id="persuasion", text="\n\n".join(paragraphs))
    # Under the default budget: the plan is made at the measured speed and obeys it (which plan
    # fits depends on this machine's speed, so the rule is checked, not one outcome).
    timed = ContextAgent(engine=engine_2k, budget=Budget(max_seconds=INTERACTIVE_MAX_SECONDS, max_new_tokens=48)).ask(doc, QUESTION)
    plan = next(s for s in timed.trace.steps if s.name == "plan")
    assert plan.detail["speed"]["source"] in {"probe", "cache"}
    fitting = [c["recipe"] for c in plan.detail["candidates"] if not c["blockers"]]
    assert plan.detail["recipe"] == (fitting[0] if fitting else min(plan.detail["candidates"], key=lambda c: c["seconds"])["recipe"])
    assert timed.recipe == f"auto:{plan.detail['recipe']}"
    # Without a time limit, auto reads everything and finds the needle.
    answer = ContextAgent(engine=engine_2k, budget=Budget(max_new_tokens=48)).ask(doc, QUESTION)
    assert answer.recipe == "auto:map_reduce"
    assert "4817" in answer.text, answer.text
    assert all(doc.text[c.start : c.end] == c.quote for c in answer.citations)


# -- effective context, measured with the real engine ------------------------------------------
def test_effective_context_is_measured_and_stored(engine_2k):
    from ctxagent.cli import build_parser
    from ctxagent.evaluation.reach import default_lengths, measure_effective_context

    assert build_parser().parse_args(["eval", "--effective-context"]).effective_context
    assert default_lengths(8192) == [512, 1024, 2048, 4096, 7936]
    assert effective_context(engine_2k).source == "default"
    result = measure_effective_context(engine_2k, lengths=[256, 512], depths=[0.5])
    assert set(result.accuracy_by_length) <= {256, 512} and 256 in result.accuracy_by_length
    stored = effective_context(engine_2k)
    assert stored.source == "measured" and stored.tokens == result.tokens
    assert result.tokens in {128, 256, 512}  # a passing length, or half the shortest when none passed


def test_openai_engine_measures_the_servers_speed_keyed_by_url(engine_2k):
    from ctxagent.engines import get_engine
    from ctxagent.server import running_server

    with running_server(engine_2k) as server:
        client = get_engine("openai", base_url=server.base_url, max_retries=0)
        try:
            assert server.base_url in client.speed_key()
            speed = client.speed()
            assert speed.source == "probe" and speed.prefill_tokens_per_second > speed.decode_tokens_per_second > 0
            requests = server.state.seen
            client._speed = None
            assert client.speed().source == "cache" and server.state.seen == requests
        finally:
            client.close()
