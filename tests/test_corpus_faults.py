"""Corpus faults are reported, never silent: every file that could not be read is named, with why,
in the notes of `ask DIR`, of `ask(Corpus(...))` and of the batch corpus mode; two `ctxagent index`
processes on one folder leave a consistent index; an index run killed with SIGKILL is recovered
by the next one, with a warning. Real files, the real embedded model, BM25 retrieval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import shutil
import time
import uuid
from pathlib import Path

import pytest

from ctxagent import ContextAgent, Corpus
from ctxagent.corpus.index import UPDATING, CorpusIndex
from tests.corpus_support import paragraphs, write_austen_corpus

ROOT = Path(__file__).resolve().parent.parent
RENT = "The annual rent of Hartfield Lodge, agreed with the agent Mr. Pemberton, is 480 pounds, payable at Michaelmas."
QUESTION = "What is the annual rent of Hartfield Lodge?"
NON_UTF8 = b"caf\xe9-notes.txt"  # Latin-1 bytes: not a UTF-8 file name
FAULTS = {"damaged.docx": "", "empty.txt": "empty", "binary.txt": "binary", "loop.md": "cannot open"}


@pytest.fixture()
def index_name():
    """A fresh index name under the shared cache, removed afterwards (ids and contents repeat across runs)."""
    from ctxagent.cache import cache_dir

    name = f"faults-{uuid.uuid4().hex[:10]}"
    yield name
    shutil.rmtree(cache_dir("corpora", name), ignore_errors=True)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    write_austen_corpus(docs, files=4)
    emma = paragraphs("emma")
    (docs / "lease.txt").write_text(f"{emma[200]}\n\n{RENT}\n\n{emma[201]}\n", encoding="utf-8")
    (docs / "damaged.docx").write_bytes(b"PK\x03\x04 this is not a whole zip archive" + os.urandom(64))
    (docs / "empty.txt").write_bytes(b"")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    os.symlink("loop.md", docs / "loop.md")  # a link to itself: opening it loops
    with open(os.path.join(os.fsencode(docs), NON_UTF8), "wb") as f:
        f.write(b"The cafe opens at nine every morning.\n")
    return docs


class ChangingCorpus(Corpus):
    """A folder where one file is written to every time it is read (a writer that does not stop)."""

    def get(self, doc_id, *, fresh=False):
        document = super().get(doc_id, fresh=fresh)
        if doc_id == "busy.txt":
            with open(self._files[doc_id], "a", encoding="utf-8") as f:
                f.write("More text arrives.\n")
        return document


def _assert_named(notes: list[str], extra: tuple[str, ...] = ()) -> None:
    text = "\n".join(notes)
    for name, why in FAULTS.items():
        line = next((n for n in notes if n.startswith(f"could not read {name}:")), None)
        assert line is not None and why in line.lower(), (name, text)
    for name in extra:
        assert f"could not read {name}:" in text, (name, text)


def test_ask_a_corpus_names_every_unreadable_file_and_still_answers(folder: Path, tmp_path: Path, engine) -> None:
    (folder / "busy.txt").write_text("Notes that keep growing.\n", encoding="utf-8")
    corpus = ChangingCorpus(folder)
    assert "caf\\xe9-notes.txt" in corpus.ids()  # the non-UTF-8 name is read, under a printable id
    index = CorpusIndex(corpus, root=tmp_path / "index", retriever="bm25")
    report = index.update()
    assert set(report.failed) == {*FAULTS, "busy.txt"}, report.failed
    assert "changed while it was being read" in report.failed["busy.txt"]
    answer = ContextAgent(engine=engine).ask(index, QUESTION, recipe="direct")
    assert "480" in answer.text
    _assert_named(answer.notes, ("busy.txt",))
    json.loads(answer.model_dump_json())  # every id and note can be saved


def test_cli_ask_dir_names_the_skipped_files(folder: Path, index_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ctxagent.cli import main

    args = ["ask", str(folder), QUESTION, "--json", "--retriever", "bm25", "--name", index_name, "--recipe", "direct", "--max-new-tokens", "40", "--max-seconds", "0"]
    assert main(args) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "480" in answer["text"]
    _assert_named(answer["notes"])


def _index_command(folder: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "ctxagent.cli", "index", str(folder), "--name", name, "--retriever", "bm25", "--json"]


def test_two_index_processes_at_once_leave_one_consistent_index(tmp_path: Path, index_name: str) -> None:
    docs = tmp_path / "many"
    write_austen_corpus(docs, files=40)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    name = index_name
    runs = [subprocess.Popen(_index_command(docs, name), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    added = sorted(len(r["added"]) for r in reports)
    assert added == [0, 40], added  # the second waited for the first and found its work done
    index = CorpusIndex(Corpus(docs), name=name, retriever="bm25").load()
    assert {c.doc_id for c in index.retriever.chunks} == set(Corpus(docs).ids())


def test_an_index_run_killed_mid_way_is_recovered_with_a_warning(tmp_path: Path, index_name: str) -> None:
    docs = tmp_path / "many"
    write_austen_corpus(docs, files=200)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    name = index_name
    index = CorpusIndex(Corpus(docs), name=name, retriever="bm25")
    run = subprocess.Popen(_index_command(docs, name), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (index.path / UPDATING).exists():  # the update has begun
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    again = subprocess.run(_index_command(docs, name), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "was interrupted" in again.stderr, again.stderr[-2000:]
    assert not (index.path / UPDATING).exists()
    index.load()
    assert {c.doc_id for c in index.retriever.chunks} == set(Corpus(docs).ids())


def test_batch_corpus_mode_names_the_skipped_files(folder: Path, tmp_path: Path, engine, monkeypatch) -> None:
    from ctxagent import batch

    monkeypatch.setenv("CTXAGENT_CACHE", str(tmp_path / "cache"))  # its own index, under the default name
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "rent", "corpus": True, "question": QUESTION}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = batch.run(folder, questions, out, engine=engine, recipe="direct", progress=False)
    assert summary.failed == 0
    result = batch.read_results(out)["rent"]
    assert "480" in (result.text or "")
    _assert_named(result.notes)
