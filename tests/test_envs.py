"""Environment variables: declared once (ctxagent/envs.py), and one set forwarded to Ray workers."""

from __future__ import annotations

import ast
from pathlib import Path

from ctxagent import envs

ROOT = Path(__file__).resolve().parent.parent / "ctxagent"


def test_workers_get_the_cache_the_offline_switch_and_the_users_own_settings(monkeypatch):
    for name, value in {"CTXAGENT_CACHE": "/c", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": "/src", "CTXAGENT_ANYTHING": "x", "HOME": "/h"}.items():
        monkeypatch.setenv(name, value)
    sent = envs.worker_env()
    assert {"CTXAGENT_CACHE", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "PYTHONPATH", "CTXAGENT_ANYTHING"} <= set(sent)
    assert "HOME" not in sent


def test_both_ray_executors_forward_the_one_set():
    for module in ("batch/ray_executor.py", "corpus/ray_indexing.py"):
        calls = {node.func.attr for node in ast.walk(ast.parse((ROOT / module).read_text())) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        assert "worker_env" in calls, module


def test_an_empty_value_counts_as_unset_and_a_worker_keeps_its_own(monkeypatch, tmp_path):
    monkeypatch.setenv("CTXAGENT_CACHE", "")
    assert envs.get("CTXAGENT_CACHE") is None and envs.cache_root() == Path.home() / ".cache" / "ctxagent"
    monkeypatch.setenv("CTXAGENT_CACHE", str(tmp_path))
    monkeypatch.delenv("CTXAGENT_NEW_ONE", raising=False)  # recorded as absent, so it is removed again afterwards
    envs.adopt({"CTXAGENT_CACHE": "/driver", "CTXAGENT_NEW_ONE": "1"})
    assert envs.cache_root() == tmp_path and envs.get("CTXAGENT_NEW_ONE") == "1"
