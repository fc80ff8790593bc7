"""The package imports fast and light, and its registries take users' own classes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ctxagent import recipes
from ctxagent.engines import get_engine
from ctxagent.errors import EngineNotInstalled, UnknownNameError


def test_import_is_fast_and_pulls_no_heavy_libraries():
    code = (
        "import sys, time; t = time.perf_counter(); import ctxagent; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('torch', 'vllm', 'triton', 'transformers', 'fastapi', 'uvicorn') if m in sys.modules]; "
        "print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert float(out[0]) < 1.0
    assert out[1].strip() == "[]"


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match="no recipe named 'nope'; known: .*direct"):
        recipes.get_recipe("nope")


def test_missing_engine_says_which_extra_to_install():
    pytest.importorskip("ctxagent")  # keep the test meaningful only while vllm is absent
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(EngineNotInstalled, match=r"pip install ctxagent\[vllm\]"):
            get_engine("vllm")
    else:
        pytest.skip("vllm is installed here")


def test_a_user_recipe_registers_and_runs(engine):
    from ctxagent.recipes.base import run_recipe
    from ctxagent.recipes.context import RunContext
    from ctxagent.types import Document

    @recipes.register("first_sentence")
    class FirstSentence:
        name = "first_sentence"

        def run(self, ctx, documents, question):
            return ctx.answer(documents[0].text.split(".")[0], recipe=self.name)

    answer = run_recipe(recipes.get_recipe("first_sentence"), RunContext(engine=engine), [Document(id="d", text="Hello there. Bye.")], "q")
    assert answer.text == "Hello there" and answer.recipe == "first_sentence"
    assert "first_sentence" in recipes.registry.names()
