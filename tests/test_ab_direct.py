"""benchmarks/ab_direct.py's table: token F1 and answer length beside accuracy, so an answer that
`contains` the reference only by running on into quoted text shows as what it is (issue 25)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ab_direct():
    spec = importlib.util.spec_from_file_location("ab_direct", ROOT / "benchmarks" / "ab_direct.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ab_direct"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _row(recipe: str, prediction: str, f1: float) -> dict:
    return {"case": "A", "recipe": recipe, "task_id": "squad-6144-spread-0-1", "question": "What has complicated definitions that prevent classification into a framework?",
            "prediction": prediction, "score": 1.0, "f1": f1, "evidence_recall": 1.0, "unsupported": [], "scaffolding": [], "error": "",
            "prompt_tokens": 150, "tokens": 6087, "engine_calls": 6, "seconds": 11.0, "recipe_used": recipe}  # fmt: skip


def test_the_table_gives_f1_and_answer_words_beside_accuracy(tmp_path):
    ab = _ab_direct()
    # SmolLM2's run-on answer of the A/B run and the first sentence it holds: both "contain" the reference.
    run_on = ("Of course, some complexity classes have complicated definitions that do not fit into this framework. Analogous definitions can be made "
              "for space requirements. For the complexity classes defined in this way, it is desirable to prove that relaxing the requirements on computation time actually defines a bigger set")
    rows = [_row("map_reduce", run_on, 0.125), _row("retrieve_then_reason", "Some complexity classes.", 0.8)]
    table = ab.summarise(rows, {("A", "map_reduce"): 1, ("A", "retrieve_then_reason"): 1})
    long, short = table
    assert long["accuracy"] == short["accuracy"] == 1.0
    assert (long["f1"], long["answer_words_median"]) == (0.125, 48) and (short["f1"], short["answer_words_median"]) == (0.8, 3)
    meta = {"provenance": {"commit": "abc1234", "date": "today", "command": "test"}, "model": "m", "window": 8192, "lengths": {"A": 6144},
            "oracle_tokens": 1024, "questions": 1, "device": "cpu", "reach": {"tokens": 2048, "source": "test"}, "scaffolding_check": "test"}  # fmt: skip
    text = ab.markdown(table, meta)
    assert "| accuracy [95% CI] | F1 | answer words (median, mean) |" in text
    assert "| A | map_reduce | 1 | 1.00 [0.21, 1.00] | 0.12 | 48, 48.0 |" in text and "| 0.80 | 3, 3.0 |" in text


def test_report_only_rebuilds_the_table_with_the_new_columns_from_a_stored_run(tmp_path):
    stored = ROOT / "benchmarks" / "results" / "ab_direct" / "smollm2_cpu"
    for name in ("results.jsonl", "provenance.json"):
        (tmp_path / name).write_text((stored / name).read_text(encoding="utf-8"), encoding="utf-8")
    assert _ab_direct().report_only(tmp_path) == 0
    table = json.loads((tmp_path / "ab_direct.json").read_text(encoding="utf-8"))["table"]
    assert all(row["f1"] is not None and row["answer_words_median"] >= 1 for row in table if row["n"])
    assert "answer words (median, mean)" in (tmp_path / "ab_direct.md").read_text(encoding="utf-8")
