"""Document QA end to end with the real embedded model: SDK, CLI, citations, truncation, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ctxagent import ContextAgent
from ctxagent.citations import verify_citations
from ctxagent.errors import InputError
from ctxagent.types import Budget, Document
from tests.grounded import assert_grounded

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "examples" / "data" / "report.md"


@pytest.fixture(scope="module")
def agent(engine) -> ContextAgent:
    return ContextAgent(engine=engine)


def test_bundled_example_is_answered_with_a_true_citation(agent):
    answer = agent.ask(REPORT, "What was the third-quarter revenue?")
    assert "26.4" in answer.text
    assert answer.citations, "the answer should cite its source sentence"
    assert "26.4 million euros" in answer.citations[0].quote
    source = REPORT.read_text()
    assert all(source[c.start : c.end] == c.quote for c in answer.citations)
    assert answer.recipe == "auto:direct" and not answer.partial
    assert answer.usage.engine_calls == 1 and answer.usage.prompt_tokens > 300
    assert [s.name for s in answer.trace.steps] == ["plan", "fit", "answer", "evidence", "answer:grounded"]
    assert answer.trace.steps[3].detail["spans"] == [["report.md", 0, len(source)]]
    assert_grounded(answer, "What was the third-quarter revenue?")


def test_needle_in_a_short_document(agent):
    doc = Document(id="memo", text="The weather was mild all week. The vault code is 7319. Lunch is served at noon.")
    answer = agent.ask(doc, "What is the vault code?")
    assert "7319" in answer.text
    assert answer.citations[0].quote == "The vault code is 7319."
    assert not verify_citations(answer.citations, [doc])
    assert_grounded(answer, "What is the vault code?")


def test_ten_million_characters_are_truncated_and_the_answer_says_so(engine_2k):
    agent = ContextAgent(engine=engine_2k)
    text = "The vault code is 7319. " + "The harbour was quiet that morning. " * 280_000
    answer = agent.ask(Document(id="huge", text=text), "What is the vault code?", recipe="direct", budget=Budget(max_new_tokens=8))
    assert answer.notes and "huge: read the first" in answer.notes[0] and "2048-token window" in answer.notes[0]
    # The window is filled but never overrun.
    assert 0.8 * agent.engine.context_window < answer.usage.prompt_tokens < agent.engine.context_window


def test_empty_question_and_duplicate_ids_are_rejected(agent):
    with pytest.raises(InputError, match="question is empty"):
        agent.ask(REPORT, "   ")
    doc = Document(id="same", text="a")
    with pytest.raises(InputError, match="share the id 'same'"):
        agent.ask([doc, doc], "q?")
    with pytest.raises(InputError, match="file not found"):
        agent.ask("does-not-exist.pdf", "q?")


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ctxagent.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow  # the CLI loads the real model in its own process
def test_cli_reads_stdin_and_prints_json():
    done = _cli("ask", "-", "What is the vault code?", "--json", stdin="The weather was mild all week. The vault code is 7319. Lunch is served at noon.")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert "7319" in answer["text"]
    assert answer["citations"][0]["doc_id"] == "stdin"
    assert answer["basis"] == "stated"


def test_cli_says_how_a_yes_no_answer_stands_to_its_citations():
    text = "The weather was mild all week. The vault was opened in 1921 by the bank's clerk. Lunch is served at noon."
    done = _cli("ask", "-", "Was the vault opened in 1921?", stdin=text)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Yes") and "opened in 1921" in done.stdout
    assert re.search(r"recipe \S+, stated;", done.stderr), done.stderr


def test_cli_reports_bad_input_with_exit_code_2(tmp_path):
    done = _cli("ask", str(tmp_path / "missing.txt"), "q?")
    assert done.returncode == 2
    assert "file not found" in done.stderr


def test_budget_too_small_for_any_call_gives_partial_answer(agent):
    answer = agent.ask(REPORT, "What was the third-quarter revenue?", budget=Budget(max_tokens=100))
    assert answer.partial and answer.text == ""
