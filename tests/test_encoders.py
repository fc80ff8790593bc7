"""One sentence encoder per process: dense retrieval, the embedding compressor and evidence
selection share MiniLM (ctxagent.encoders), whatever name each gives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json
from ctxagent import encoders
from ctxagent.compressors import get_compressor
from ctxagent.recipes.evidence import SentencePool
from ctxagent.retrievers import get_retriever
from ctxagent.types import Chunk, Document
from ctxagent.chunking import chunk_document

text = "The vault code is 7319. The meeting moved to Friday. Lunch is at noon."
chunks = chunk_document(Document(id="memo", text=text), lambda t: len(t.split()), max_tokens=8)
dense = get_retriever("dense")                                   # "sentence-transformers/all-MiniLM-L6-v2"
dense.index(chunks)
hits = dense.search("What is the vault code?", 1)
compressed = get_compressor("embedding").compress(chunks, "What is the vault code?", ratio=0.5)  # "all-MiniLM-L6-v2"
pool = SentencePool(chunks)
similar = pool.dense("What is the vault code?", list(range(len(pool.texts))))
print(json.dumps({"loads": encoders.loads(), "hit": hits[0].chunk.text, "kept": compressed.text, "best": pool.texts[int(similar.argmax())]}))
"""


def test_minilm_is_loaded_once_per_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(result["loads"].values()) == [1], result["loads"]  # three users, one load
    assert "7319" in result["hit"] and "7319" in result["kept"] and "7319" in result["best"], result
