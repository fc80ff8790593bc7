"""One question over a folder of 35 real-text files, with the real embedded model and hybrid retrieval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ctxagent import Budget, ContextAgent, Corpus
from ctxagent.cache import cache_dir
from tests.corpus_support import paragraphs, write_austen_corpus, write_docx

pytest.importorskip("docx")
pytestmark = pytest.mark.slow  # the real model, in this process and through the CLI

RENT = "The annual rent of Hartfield Lodge, agreed with the agent Mr. Pemberton, is 480 pounds, payable at Michaelmas."
LARKSPUR = "A ticket on the Larkspur ferry costs fourteen shillings."
BLUEBELL = "A ticket on the Bluebell ferry costs nine shillings."


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("corpus") / "docs"
    write_austen_corpus(docs, files=32)
    emma, persuasion = paragraphs("emma"), paragraphs("persuasion")
    write_docx(docs / "lease_hartfield.docx", [emma[200], RENT, emma[201]], heading="Lease of Hartfield Lodge")
    (docs / "larkspur_fares.txt").write_text(f"{persuasion[110]}\n\n{LARKSPUR}\n\n{persuasion[111]}\n", encoding="utf-8")
    (docs / "bluebell_fares.md").write_text(f"{persuasion[120]}\n\n{BLUEBELL}\n\n{persuasion[121]}\n", encoding="utf-8")
    assert len(list(docs.iterdir())) == 35
    return docs


@pytest.fixture(scope="module")
def index_name(folder: Path):
    name = f"test-{folder.parent.name}"
    yield name
    shutil.rmtree(cache_dir("corpora", name), ignore_errors=True)


def test_cli_ask_a_folder_answers_and_cites_the_docx(folder: Path, index_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ctxagent.cli import main

    assert main(["ask", str(folder), "What is the annual rent of Hartfield Lodge?", "--name", index_name, "--json", "--max-new-tokens", "40", "--max-seconds", "0"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "480" in answer["text"]
    assert answer["citations"] and {c["doc_id"] for c in answer["citations"]} == {"lease_hartfield.docx"}
    document = Corpus(folder).get("lease_hartfield.docx")
    for c in answer["citations"]:
        assert document.text[c["start"] : c["end"]] == c["quote"]
    assert answer["recipe"].startswith("corpus:")


def test_a_question_needing_two_files_cites_both(folder: Path, index_name: str, engine) -> None:
    agent = ContextAgent(engine=engine, budget=Budget(max_new_tokens=40))
    from ctxagent.corpus.index import CorpusIndex

    index = CorpusIndex(Corpus(folder), name=index_name)
    index.update()
    answer = agent.ask(index, "How much does a ticket cost on the Larkspur ferry and on the Bluebell ferry?")
    cited = {c.doc_id for c in answer.citations}
    assert {"larkspur_fares.txt", "bluebell_fares.md"} <= cited, (answer.text, answer.citations, [s.detail for s in answer.trace.steps])
    for c in answer.citations:
        assert index.corpus.get(c.doc_id).text[c.start : c.end] == c.quote
    assert "shillings" in answer.text
