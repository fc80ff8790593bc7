"""Corpus batch jobs: cross-document batching, resuming after a kill, error lines, the Ray executor.

The end-to-end tests use the real embedded model; the scripted engine only checks
the control flow of the batching wrapper and the result log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ctxagent import ContextAgent, batch
from ctxagent.engines.batching import BatchingEngine
from ctxagent.errors import InputError
from ctxagent.types import Budget
from tests.fakes import ScriptedEngine

ROOT = Path(__file__).resolve().parent.parent

# Short documents, one fact each: the embedded model answers these reliably and fast.
FACTS = [
    ("northwind", "Northwind is a small company. The revenue of Northwind is 26.4 million euros. It has offices in two countries.", "What is the revenue of Northwind?", "26.4"),
    ("borealis", "Borealis is a small company. The headcount of Borealis is 412 people. It has offices in two countries.", "What is the headcount of Borealis?", "412"),
    ("granite", "Granite is a small company. The launch year of Granite is 2019. It has offices in two countries.", "What is the launch year of Granite?", "2019"),
    ("fjord", "Fjord is a small company. The auditor of Fjord is Kessler & Partners. It has offices in two countries.", "Who is the auditor of Fjord?", "Kessler"),
]
BUDGET = Budget(max_new_tokens=40)


def write_job(folder: Path, missing_doc: bool = True, rounds: int = 1) -> tuple[Path, Path]:
    corpus, questions = folder / "corpus.jsonl", folder / "questions.jsonl"
    corpus.write_text("".join(json.dumps({"id": d, "text": t}) + "\n" for d, t, _, _ in FACTS))
    lines = [{"id": question_id(d, r), "doc": d, "question": q} for r in range(rounds) for d, _, q, _ in FACTS]
    if missing_doc:
        lines.append({"id": "q-missing", "doc": "no-such-doc", "question": "What is in it?"})
    questions.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return corpus, questions


def question_id(doc_id: str, round_no: int = 0) -> str:
    return f"q-{doc_id}" if round_no == 0 else f"q-{doc_id}-{round_no}"


# -- control flow (scripted engine) ------------------------------------------------------------


def test_concurrent_calls_become_one_engine_call():
    inner = ScriptedEngine(lambda p: p.split()[-1])
    batcher = BatchingEngine(inner, max_wait=5.0)
    outputs: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            time.sleep(0.02 * i)  # arrive at different times; the batch waits for all
            outputs[i] = batcher.generate([f"prompt {i}"])[0].text
        finally:
            batcher.leave()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    batcher.join(len(threads))
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outputs == {i: str(i) for i in range(5)}
    assert len(inner.calls) == 1 and len(inner.calls[0]) == 5
    assert batcher.engine_calls == 1 and batcher.requests == 5


def test_a_bad_prompt_fails_only_its_own_caller():
    def reply(prompt: str) -> str:
        if "poison" in prompt:
            raise InputError("prompt too long")
        return "fine"

    batcher = BatchingEngine(ScriptedEngine(reply), max_wait=5.0)
    got: dict[str, object] = {}

    def work(text: str) -> None:
        with batcher.worker():
            try:
                got[text] = batcher.generate([text])[0].text
            except InputError as exc:
                got[text] = exc

    threads = [threading.Thread(target=work, args=(t,)) for t in ("a", "poison", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got["a"] == "fine" and got["b"] == "fine"
    assert isinstance(got["poison"], InputError)


def test_resume_skips_finished_and_repairs_a_torn_line(tmp_path):
    corpus, questions = write_job(tmp_path)
    out = tmp_path / "out.jsonl"
    engine = ScriptedEngine(lambda p: "scripted")
    first = batch.run(corpus, questions, out, engine=engine, concurrency=2, progress=False)
    assert (first.answered, first.failed) == (4, 1)
    lines = out.read_text().splitlines()
    # Keep two finished lines and half of a third, as a kill mid-write would.
    out.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    second = batch.run(corpus, questions, out, engine=engine, concurrency=2, progress=False)
    assert second.skipped == 2 and second.answered + second.failed == 3
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted([f"q-{d}" for d, *_ in FACTS] + ["q-missing"])
    missing = batch.read_results(out)["q-missing"]
    assert missing.error_type == "InputError" and "no-such-doc" in missing.error
    # Failed questions are finished unless asked to retry them; a retry rewrites, never duplicates.
    again = batch.run(corpus, questions, out, engine=engine, retry_errors=True, progress=False)
    assert (again.skipped, again.failed) == (4, 1)
    assert len(out.read_text().splitlines()) == 5


def test_bad_job_files_name_the_line(tmp_path):
    corpus, _ = write_job(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"doc": "northwind", "question": "ok?"}\n{"doc": "northwind"}\n')
    with pytest.raises(InputError, match="line 2"):
        batch.run(corpus, bad, tmp_path / "o.jsonl", engine=ScriptedEngine(), progress=False)
    with pytest.raises(InputError, match="corpus not found"):
        batch.run(tmp_path / "nope", bad, tmp_path / "o.jsonl", engine=ScriptedEngine(), progress=False)


def test_folder_corpus_ids_are_relative_paths(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "sub" / "a.md").write_text("Alpha text.")
    (tmp_path / "docs" / "b.txt").write_text("Beta text.")
    corpus = batch.Corpus(tmp_path / "docs")
    assert sorted(corpus.ids()) == ["b.txt", "sub/a.md"]
    assert corpus.get("sub/a.md").text == "Alpha text."


# -- the real model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_run(engine, tmp_path_factory):
    """The job answered in-process with cross-document batching (concurrency 4)."""
    folder = tmp_path_factory.mktemp("batch")
    corpus, questions = write_job(folder)
    out = folder / "local.jsonl"
    summary = batch.run(corpus, questions, out, engine=engine, concurrency=4, max_wait=30, budget=BUDGET, progress=False)
    return corpus, questions, summary, batch.read_results(out)


def test_batched_answers_equal_one_by_one_answers(engine, local_run):
    corpus, _, summary, results = local_run
    assert summary.answered == 4 and summary.failed == 1
    assert summary.engine_calls == 1, "the four documents' answer prompts should go out as one engine call"
    docs = batch.Corpus(corpus)
    agent = ContextAgent(engine=engine, budget=BUDGET)
    for doc_id, _, question, expected in FACTS:
        alone = agent.ask(docs.get(doc_id), question)
        together = results[f"q-{doc_id}"]
        assert together.text == alone.text
        assert together.citations == alone.citations
        assert together.basis == alone.basis and together.basis is not None  # how the text stands to its citations, kept in OUT.jsonl
    assert sum(expected in results[f"q-{d}"].text for d, _, _, expected in FACTS) >= 3  # a 135M model; most are right


def _start(corpus: Path, questions: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ctxagent.cli", "batch", str(corpus), str(questions), "-o", str(out),
           "--concurrency", "1", "--max-new-tokens", "40", "--no-progress"]  # fmt: skip
    # A shell that starts a job in the background (`make test &`, some CI runners) leaves SIGINT
    # ignored, and children inherit that; give the batch process the default, as a terminal would.
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_lines(proc: subprocess.Popen, out: Path, n: int, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"batch exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("batch wrote no output in time")


def test_killed_and_interrupted_batch_resumes_with_every_answer_once(tmp_path, local_run):
    # Three rounds of the questions, so that a kill or Ctrl-C always lands with work left to do
    # however fast the answers come.
    corpus, questions = write_job(tmp_path, missing_doc=False, rounds=3)
    expected = sorted(question_id(d, r) for r in range(3) for d, *_ in FACTS)
    out = tmp_path / "out.jsonl"
    # 1: hard kill after the first answer.
    proc = _start(corpus, questions, out)
    _wait_for_lines(proc, out, 1)
    proc.kill()
    proc.wait(30)
    killed_at = out.read_text().count("\n")
    assert 1 <= killed_at < len(expected) - 1
    # 2: Ctrl-C after one more answer: exits promptly, keeps what it wrote.
    proc = _start(corpus, questions, out)
    _wait_for_lines(proc, out, killed_at + 1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    # 3: finish.
    proc = _start(corpus, questions, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == expected, "every question answered exactly once"
    reference = local_run[3]
    for record in lines:
        assert record["error"] is None
        first_round_id = record["id"].rsplit("-", 1)[0] if record["id"].count("-") == 2 else record["id"]
        assert record["text"] == reference[first_round_id].text  # same answers as the batched in-process run


def test_ray_executor_gives_the_local_outputs(tmp_path, local_run):
    ray = pytest.importorskip("ray")
    corpus, questions, _, reference = local_run
    out = tmp_path / "ray.jsonl"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = batch.run(
            corpus, questions, out, executor="ray", concurrency=4, budget=BUDGET, progress=False,
            ray_options={"workers": 1, "cpus_per_worker": 2},
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert (summary.answered, summary.failed) == (4, 1)
    results = batch.read_results(out)
    assert set(results) == set(reference)
    for qid, result in results.items():
        assert result.text == reference[qid].text
        assert result.citations == reference[qid].citations
        assert result.error_type == reference[qid].error_type


def test_the_batcher_forwards_exactly_the_engine_capabilities():
    from ctxagent.engines.base import Engine, capabilities
    from ctxagent.engines.speed import EngineSpeed, engine_speed

    plain = BatchingEngine(ScriptedEngine())
    assert isinstance(plain, Engine) and capabilities(plain) == capabilities(ScriptedEngine()) == set() and plain.streams is False

    class Rated(ScriptedEngine):
        model_name = "rated-model"
        tokens_per_second = 400.0

    rated = BatchingEngine(Rated())
    assert capabilities(rated) == capabilities(Rated()) == {"names_model", "states_speed"} and rated.model_name == "rated-model"
    assert engine_speed(rated, probe=False) == EngineSpeed(prefill_tokens_per_second=400.0, decode_tokens_per_second=20.0, source="engine")
    with pytest.raises(AttributeError):
        rated.model  # nothing beyond the declared capabilities is forwarded
