"""Our `perplexity` compressor against Microsoft's llmlingua (LongLLMLingua mode), side by side.

Same scorer model (the embedded SmolLM2-135M-Instruct, the converted weights both
load from the same folder, float32), same prompts, same chunks: needle tasks of
2k, 8k and 32k tokens built from real text that ships with Python (its own help
topics, PSF licence), compressed 2x, 4x and 10x. For every prompt: seconds to
compress, the ratio reached, whether the needle's answer survived, and whether
the embedded model then answers correctly from the compressed context (asked
with `direct`, its window capped at --answer-window tokens; when the answer is no
longer in the compressed text the model is not asked and the trial scores 0).
The `embedding` compressor runs too, as a cheap reference, and `perplexity+contrastive`
(ours with LongLLMLingua's second, question-conditioned pass and no prefilter).

    python benchmarks/compressors.py                                  # full grid, one run
    python benchmarks/compressors.py --prompts 2048:2,8192:1,32768:1  # prompts per length

The committed results came from three runs merged (`--merge`), one per length:
`--lengths 2048 --prompts 2048:5 --answer-window 2048 --tag 2k`, then
`--lengths 8192 --prompts 8192:3 --tag 8k` and `--lengths 32768 --prompts 32768:1 --tag 32k`.

Two adapters make llmlingua 0.2.2 run here, neither touching its algorithm:
* its constructor asks tiktoken for the gpt-3.5-turbo encoding, which tiktoken
  downloads; with no internet we hand it the scorer's own tokenizer instead, so
  its rate targets are counted in the same tokens as ours (they only size budgets);
* its token-level loop treats the KV cache as a list of (key, value) pairs, which
  transformers 5 replaced by Cache objects; a thin wrapper around the model converts
  between the two on every call (references only, no copies).
If llmlingua still cannot run, the table says exactly why.

Trials run interleaved (ours, then llmlingua, on the same prompt) so both see the
same machine load; on a shared 2-core machine timings are noisy, and the load
average at start and end is recorded. Results: benchmarks/results/compressors.{json,md,png},
written after every trial so a cut-off run keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import signal
import statistics
import sys
import time
import traceback
import unittest.mock
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from provenance import finish, markdown_line, stamp, was_shared  # noqa: E402  (benchmarks/ is on sys.path)
from plotting import pyplot  # noqa: E402  (benchmarks/ is on sys.path)

RESULTS = ROOT / "benchmarks" / "results"

NEEDLES = [
    ("The secret code for the blue vault is 4821.", "What is the secret code for the blue vault?", "4821"),
    ("The night train to Oslo leaves from platform 17.", "Which platform does the night train to Oslo leave from?", "17"),
    ("Marta's favourite number is 356.", "What is Marta's favourite number?", "356"),
    ("The lighthouse keeper was paid 93 crowns a month.", "How many crowns a month was the lighthouse keeper paid?", "93"),
]
DEPTHS = [0.5, 0.25, 0.75, 0.1, 0.9]


# -- tasks ----------------------------------------------------------------------------------
def haystack_text() -> str:
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    return "\n\n".join(topics[k].strip() for k in sorted(topics))


def make_task(text: str, tokens: int, index: int, count_tokens: Any) -> dict[str, Any]:
    """A haystack of about `tokens` tokens (a different slice per index) with one needle at a depth."""
    sentence, question, answer = NEEDLES[index % len(NEEDLES)]
    start = (index * 97_000) % max(1, len(text) - tokens * 6)
    start = text.find("\n\n", start) + 2
    chars = tokens * 4
    while True:
        piece = text[start : start + chars]
        n = count_tokens(piece)
        if abs(n - tokens) <= tokens * 0.03 or start + chars >= len(text):
            break
        chars = int(chars * tokens / n)
    depth = DEPTHS[index % len(DEPTHS)]
    cut = piece.find("\n\n", int(len(piece) * depth))
    cut = cut if cut > 0 else len(piece)
    body = piece[:cut] + "\n\n" + sentence + "\n\n" + piece[cut:].lstrip("\n")
    return {"text": body, "question": question, "answer": answer, "needle": sentence, "depth": depth}


# -- llmlingua ------------------------------------------------------------------------------
class _TokenizerAsTiktoken:
    """The two tiktoken methods llmlingua calls, answered by a Hugging Face tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str, **_: Any) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


class _LegacyCacheModel:
    """Lets llmlingua's list-of-(key, value) KV cache talk to a transformers 5 model."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, *args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
        from transformers import DynamicCache
        from transformers.cache_utils import Cache

        if past_key_values is not None and not isinstance(past_key_values, Cache):
            past_key_values = DynamicCache([(k, v) for k, v in past_key_values])
        out = self._model(*args, past_key_values=past_key_values, **kwargs)
        if isinstance(out.past_key_values, Cache):
            out.past_key_values = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        return out


def load_llmlingua(model_dir: str, tokenizer: Any, device: str) -> tuple[Any, str]:
    """(PromptCompressor or None, why not)."""
    try:
        import llmlingua
        from llmlingua import PromptCompressor
    except ImportError as exc:
        return None, f"llmlingua is not installed ({exc}): pip install 'ctxagent[bench]'"
    try:
        with unittest.mock.patch("tiktoken.encoding_for_model", return_value=_TokenizerAsTiktoken(tokenizer)):
            compressor = PromptCompressor(model_name=model_dir, device_map=device)
        compressor.model = _LegacyCacheModel(compressor.model)
        return compressor, f"llmlingua {getattr(llmlingua, '__version__', '?')}"
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        return None, f"llmlingua failed to load: {type(exc).__name__}: {exc}"


def llmlingua_compress(compressor: Any, chunks: list[str], question: str, rate: float) -> str:
    """LongLLMLingua as its README recommends it, context only (no question appended)."""
    result = compressor.compress_prompt(
        chunks,
        question=question,
        rate=rate,
        condition_in_question="after_condition",
        reorder_context="sort",
        dynamic_context_compression_ratio=0.3,
        condition_compare=True,
        context_budget="+100",
        rank_method="longllmlingua",
        concate_question=False,
    )
    return result["compressed_prompt"]


# -- answering ------------------------------------------------------------------------------
def answer_correct(engine: Any, context: str, question: str, answer: str) -> tuple[bool | None, str]:
    """(correct, model answer); None when the answer is gone from the context, so the model is not asked."""
    if answer not in context:
        return None, ""
    from ctxagent.recipes.context import RunContext
    from ctxagent.recipes.direct import DirectRecipe
    from ctxagent.types import Budget, Document

    ctx = RunContext(engine=engine, budget=Budget(max_new_tokens=16))
    reply = DirectRecipe().run(ctx, [Document(id="c", text=context)], question)
    return answer in reply.text, reply.text


# -- report ---------------------------------------------------------------------------------
# Room in the answerer's window for the instruction, the question and the answer.
ANSWER_ROOM = 200


def fits_answerer(row: dict[str, Any], window: int) -> bool:
    """Whether the compressed context fitted the answerer's window: `direct` truncates a longer
    one, so a wrong answer there says nothing about the compressor."""
    return row["ratio"] * row["original_tokens"] <= row.get("answer_window", window) - ANSWER_ROOM


def summarise(rows: list[dict[str, Any]], window: int) -> list[dict[str, Any]]:
    cells: dict[tuple[int, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["tokens"], r["factor"], r["system"]), []).append(r)
    out = []
    for (tokens, factor, system), group in sorted(cells.items()):
        ok = [g for g in group if "error" not in g and "timeout" not in g]
        timeouts = [g for g in group if "timeout" in g]
        out.append(
            {
                "tokens": tokens,
                "factor": factor,
                "system": system,
                "prompts": len(group),
                "errors": len(group) - len(ok) - len(timeouts),
                "timeouts": len(timeouts),
                "timeout_seconds": min((g["seconds"] for g in timeouts), default=None),
                "seconds": statistics.mean(g["seconds"] for g in ok) if ok else None,
                "ratio": statistics.mean(g["ratio"] for g in ok) if ok else None,
                "kept": sum(g["kept"] for g in ok) / len(ok) if ok else None,
                "answered": len(fitting := [g for g in ok if fits_answerer(g, window)]),
                "accuracy": sum(bool(g["correct"]) for g in fitting) / len(fitting) if fitting else None,
            }
        )
    for cell in out:
        ref = next((c for c in out if (c["tokens"], c["factor"], c["system"]) == (cell["tokens"], cell["factor"], "llmlingua")), None)
        cell["speedup_vs_llmlingua"] = ref["seconds"] / cell["seconds"] if ref and ref["seconds"] and cell["seconds"] else None
        # llmlingua stopped at the limit: its time is a lower bound, so the speed-up is too.
        cell["speedup_at_least"] = (
            ref["timeout_seconds"] / cell["seconds"] if ref and not ref["seconds"] and ref["timeout_seconds"] and cell["seconds"] else None
        )
    return out


def seconds_cell(c: dict[str, Any]) -> str:
    if c["seconds"] is not None:
        return f"{c['seconds']:.1f}"
    if c["timeouts"]:
        return f"> {c['timeout_seconds']:.0f} (stopped)"
    return "–"


def speedup_cell(c: dict[str, Any]) -> str:
    if c["speedup_vs_llmlingua"]:
        return f"{c['speedup_vs_llmlingua']:.2f}x"
    if c["speedup_at_least"]:
        return f"> {c['speedup_at_least']:.2f}x"
    return "–"


def answer_windows(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    by_window: dict[int, set[int]] = {}
    for r in rows:
        by_window.setdefault(r.get("answer_window", meta["answer_window"]), set()).add(r["tokens"])
    if len(by_window) == 1:
        return str(next(iter(by_window)))
    return ", ".join(f"{w} (for {'/'.join(str(t) for t in sorted(ts))}-token prompts)" for w, ts in sorted(by_window.items()))


def accuracy_cell(c: dict[str, Any]) -> str:
    if c["accuracy"] is None:
        return "– (longer than the answerer's window)" if c["ratio"] is not None else "–"
    note = f" ({c['answered']} of {c['prompts']} fitted)" if c["answered"] < c["prompts"] - c["errors"] - c["timeouts"] else ""
    return f"{c['accuracy']:.0%}{note}"


def load_note(meta: dict[str, Any]) -> str:
    """Whether other work shared the CPU (provenance.was_shared), in this table's words."""
    loads = [x for key in ("load_start", "load_end") for x in meta.get(key, []) if isinstance(x, (int, float))]
    return "shared with other work: timings noisy" if was_shared(loads, os.cpu_count() or 1) else "otherwise idle"


def _provenances(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The provenance block of a run, or of each merged run."""
    found = meta.get("provenance")
    return found if isinstance(found, list) else [found] if found else []


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], stem: str = "compressors") -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows, meta["answer_window"])
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "summary": summary, "trials": rows}, indent=2))
    fmt = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
    lines = [
        "# Compressors: ours vs llmlingua (LongLLMLingua mode)",
        "",
        *[markdown_line(block) for block in _provenances(meta)],
        "",
        f"Machine: {meta['machine']}; load average at start {meta['load_start']}, at end {meta.get('load_end', 'n/a')} ({load_note(meta)}).",
        f"Scorer: {meta['scorer']} for both; answerer: same model, window {answer_windows(rows, meta)} tokens. llmlingua: {meta['llmlingua']}.",
        "",
        "| tokens | target | system | prompts | s / prompt | speed-up vs llmlingua | ratio reached | needle kept | answer accuracy |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in summary:
        lines.append(
            f"| {c['tokens']} | {c['factor']}x | {c['system']} | {c['prompts']}{' (' + str(c['errors']) + ' failed)' if c['errors'] else ''} "
            f"| {seconds_cell(c)} | {speedup_cell(c)} "
            f"| {fmt(c['ratio'], '.3f')} | {fmt(c['kept'], '.0%')} | {accuracy_cell(c)} |"
        )
    lines += ["", *[f"- {n}" for n in meta.get("notes", [])]]
    errors = [r for r in rows if "error" in r]
    if errors:
        lines += ["", "Failures:", *[f"- {r['system']} at {r['tokens']} tokens, {r['factor']}x: {r['error']}" for r in errors]]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    plot(summary, stem)


def plot(summary: list[dict[str, Any]], stem: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    factors = sorted({c["factor"] for c in summary})
    systems = sorted({c["system"] for c in summary})
    fig, axes = plt.subplots(2, len(factors), figsize=(4.2 * len(factors), 7), squeeze=False)
    for j, factor in enumerate(factors):
        for system in systems:
            cells = sorted((c for c in summary if c["factor"] == factor and c["system"] == system and c["seconds"]), key=lambda c: c["tokens"])
            if not cells:
                cells = []
            xs = [c["tokens"] for c in cells]
            line = axes[0][j].plot(xs, [c["seconds"] for c in cells], marker="o", label=system)[0]
            axes[1][j].plot(xs, [c["accuracy"] for c in cells], marker="o", label=system)
            stopped = [c for c in summary if c["factor"] == factor and c["system"] == system and not c["seconds"] and c["timeouts"]]
            if stopped:  # a lower bound: the run was stopped at its time limit
                axes[0][j].scatter([c["tokens"] for c in stopped], [c["timeout_seconds"] for c in stopped], marker="^", s=80, color=line.get_color())
        axes[0][j].set_title(f"{factor}x compression")
        axes[0][j].set_xscale("log", base=2)
        axes[0][j].set_yscale("log")
        axes[0][j].set_ylabel("seconds per prompt")
        axes[1][j].set_xscale("log", base=2)
        axes[1][j].set_ylim(-0.05, 1.05)
        axes[1][j].set_ylabel("answer accuracy")
        axes[1][j].set_xlabel("prompt tokens")
        axes[0][j].legend(fontsize=8)
    fig.suptitle("Prompt compression on CPU: ours vs llmlingua (LongLLMLingua), same SmolLM2-135M scorer\n(triangle: stopped at the time limit, a lower bound)")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=110)
    plt.close(fig)


def merge_runs() -> None:
    """One table from several runs (a shared machine may only allow a cell or two per run)."""
    rows: list[dict[str, Any]] = []
    runs = sorted(RESULTS.glob("compressors_*.json"))
    meta: dict[str, Any] = {}
    for path in runs:
        data = json.loads(path.read_text())
        run_meta = data["meta"]
        rows += [{"answer_window": run_meta["answer_window"], **r} for r in data["trials"]]
        if not meta:
            meta = dict(run_meta)
            meta["notes"] = list(run_meta.get("notes", []))[:3]
            meta["load_start"], meta["load_end"], meta["provenance"] = [], [], []
        meta["provenance"] += _provenances(run_meta)
        meta["load_start"].append(run_meta["load_start"][0])
        meta["load_end"].append(run_meta.get("load_end", ["?"])[0])
    meta["notes"].append(
        "merged from " + ", ".join(p.name for p in runs) + ": each run measured its cells with ours and llmlingua interleaved; "
        "1-minute load averages listed per run"
    )
    write_report(rows, meta)


# -- main -----------------------------------------------------------------------------------
class TrialTimeout(Exception):
    pass


def _timeout(signum: int, frame: Any) -> None:
    raise TrialTimeout()


VARIANTS: dict[str, dict[str, Any]] = {
    "": {},
    # The model reads every chunk and ranks sentences by a second, question-conditioned pass.
    "contrastive": {"sentences": "contrastive", "prefilter": None},
}


def build_compressor(system: str, engine: Any) -> Any:
    """`perplexity`, `embedding`, `self_information`; `perplexity+contrastive` is LongLLMLingua's two-pass scoring."""
    from ctxagent.compressors import get_compressor

    name, _, variant = system.partition("+")
    return get_compressor(name, scorer=engine, **VARIANTS[variant])


def warm_up(compressors: dict[str, Any], engine: Any) -> None:
    """Load every model a compressor uses lazily (llmlingua's loads before the loop too), so no trial pays for it."""
    from ctxagent.chunking import chunk_document
    from ctxagent.types import Document

    text = haystack_text()[:6000]
    chunks = chunk_document(Document(id="warm", text=text), engine.count_tokens, max_tokens=128)
    for compressor in compressors.values():
        compressor.compress(chunks, "What is a warm-up?", ratio=0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="2048,8192,32768")
    parser.add_argument("--factors", default="2,4,10", help="compression targets, as N x")
    parser.add_argument("--prompts", default="2048:5,8192:3,32768:1", help="prompts per cell, by length")
    parser.add_argument("--systems", default="perplexity,llmlingua,perplexity+contrastive,embedding")
    parser.add_argument("--answer-window", type=int, default=8192, help="the answerer's window (SmolLM2's is 8192)")
    parser.add_argument("--chunk-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cell-seconds", type=float, default=600, help="no new prompt in a cell once a system spent this long in it")
    parser.add_argument("--trial-seconds", type=int, default=0, help="stop a compression after this long and record it as a timeout (a lower bound)")
    parser.add_argument("--merge", action="store_true", help="combine every compressors_*.json run into compressors.{json,md,png} and exit")
    parser.add_argument("--tag", default="", help="results go to compressors[_TAG].{json,md,png}")
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes (results say '<commit>-dirty')")
    args = parser.parse_args()
    stem = f"compressors_{args.tag}" if args.tag else "compressors"
    if args.merge:
        merge_runs()
        return
    provenance = stamp(args.allow_dirty)

    import torch
    import transformers

    from ctxagent.chunking import chunk_document
    from ctxagent.engines import get_engine
    from ctxagent.types import Document

    lengths = [int(x) for x in args.lengths.split(",")]
    factors = [int(x) for x in args.factors.split(",")]
    per_length = {int(k): int(v) for k, v in (p.split(":") for p in args.prompts.split(","))}
    systems = args.systems.split(",")

    engine = get_engine("hf", device=args.device)
    answerer = get_engine("hf", device=args.device, context_window=args.answer_window)
    model_dir = next(p for p in glob.glob(str(Path(os.environ.get("CTXAGENT_CACHE", Path.home() / ".cache" / "ctxagent")) / "models" / "*")) if (Path(p) / "model.safetensors").is_file())
    llm, llm_status = (None, "not requested")
    if "llmlingua" in systems:
        llm, llm_status = load_llmlingua(model_dir, engine.tokenizer, args.device)
        print(llm_status, flush=True)
    meta: dict[str, Any] = {
        "provenance": provenance,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, device {args.device}",
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "scorer": f"SmolLM2-135M-Instruct float32 from {Path(model_dir).name}",
        "answer_window": args.answer_window,
        "llmlingua": llm_status,
        "chunks": f"chunk_document(max_tokens={args.chunk_tokens}); the same chunks are llmlingua's context list",
        "notes": [
            "ours = `perplexity` with its defaults; llmlingua = compress_prompt(rank_method='longllmlingua', condition_in_question='after_condition', "
            "reorder_context='sort', dynamic_context_compression_ratio=0.3, condition_compare=True, context_budget='+100') as its README recommends; "
            "perplexity+contrastive = ours with sentences='contrastive' and prefilter=None (the model reads every chunk, then the kept ones again after the question).",
            "ratio reached = compressed context tokens / original context tokens, both counted with the SmolLM2 tokenizer.",
            "answer accuracy: the embedded model answers from the compressed context with `direct`; a compressed context longer than the answerer's window "
            "(less room for the question) is not scored, since `direct` would truncate it; "
            "a trial whose compressed text lost the answer scores 0 without asking the model.",
            f"prompts per cell by length: {per_length}; fewer where --cell-seconds ({args.cell_seconds:.0f} s) ran out (see the prompts column).",
        ],
    }
    rows: list[dict[str, Any]] = []
    text = haystack_text()
    compressors = {s: build_compressor(s, engine) for s in systems if s != "llmlingua"}
    warm_up(compressors, engine)
    for tokens in lengths:
        tasks = [make_task(text, tokens, i, engine.count_tokens) for i in range(per_length.get(tokens, 1))]
        for factor in factors:
            spent = {s: 0.0 for s in systems}
            for i, task in enumerate(tasks):
                doc = Document(id=f"t{tokens}-{i}", text=task["text"])
                chunks = chunk_document(doc, engine.count_tokens, max_tokens=args.chunk_tokens)
                original = engine.count_tokens("\n\n".join(c.text for c in chunks))
                for system in systems:
                    if spent[system] > args.cell_seconds and i > 0:
                        continue
                    row: dict[str, Any] = {"tokens": tokens, "factor": factor, "system": system, "prompt": i, "original_tokens": original, "depth": task["depth"],
                                           "answer_window": args.answer_window}  # fmt: skip
                    began = time.perf_counter()
                    try:
                        if args.trial_seconds:
                            signal.signal(signal.SIGALRM, _timeout)
                            signal.alarm(args.trial_seconds)
                        if system == "llmlingua":
                            if llm is None:
                                raise RuntimeError(llm_status)
                            compressed = llmlingua_compress(llm, [c.text for c in chunks], task["question"], 1 / factor)
                        else:
                            compressed = compressors[system].compress(chunks, task["question"], ratio=1 / factor).text
                        signal.alarm(0)
                        row["seconds"] = time.perf_counter() - began
                        spent[system] += row["seconds"]
                        row["ratio"] = engine.count_tokens(compressed) / original
                        row["kept"] = task["answer"] in compressed
                        row["correct"], row["reply"] = answer_correct(answerer, compressed, task["question"], task["answer"])
                    except TrialTimeout:
                        row["timeout"] = args.trial_seconds
                        row["seconds"] = time.perf_counter() - began
                        spent[system] += row["seconds"]
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        row["error"] = f"{type(exc).__name__}: {exc}"
                        traceback.print_exc()
                    finally:
                        signal.alarm(0)
                    rows.append(row)
                    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
                    meta["load_end"] = [round(x, 2) for x in os.getloadavg()]
                    finish(provenance)
                    write_report(rows, meta, stem)
    with contextlib.suppress(Exception):
        print((RESULTS / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
