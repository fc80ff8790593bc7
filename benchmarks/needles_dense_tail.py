"""Needle answers of a sparse config with its last query rows dense, against dense
prefill: does a dense tail (SparseConfig.dense_tail) give back the needles a sparse
prefill lost? And do the fixed budgets that the 128K time-to-first-token figures use
keep the needles on the real model?

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/needles_dense_tail.py \
        --gguf PATH/SmolLM2-135M-Instruct.Q4_1.gguf --tokenizer DIR \
        --results benchmarks/results/kernel_recall_gpu.json --tokens 8192 --selection 2 --tails 0 256
    ... --tokens 32768 --choice --patterns '{"kind": "vertical_slash", "n_vertical": 256, "n_diag": 8}' --tails 0 64

Takes one per-head selection (its config) from a kernel_recall_gpu results file, so the
patterns are the ones measured there, or with --patterns one fixed pattern per run for
every head (as benchmarks/prefill.py times them), and runs the same needle prompts
(kernel_recall_gpu's `needle_prompts`, held-out text) dense and with each --tails value. Greedy answers only
(`--choice` adds the four-way choice). Runs wherever the model fits: on a CPU the sparse
path is the torch reference, exact float32, so a CPU run also checks that the GPU run's
losses were the pattern's and not tf32 rounding. The density column is the selection's
held-out density plus the tail's share of the causal matrix (an upper bound: the tail's
rows were partly covered by the pattern already); for a fixed pattern its own part is
measured on the first needle prompt (every layer's index, mean over layers and heads).
Writes <out>/<name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
from kernel_recall_gpu import held_out, load_model, needle_check, needle_prompts, texts  # noqa: E402

from ctxagent.kernels.attention import layer_index  # noqa: E402
from ctxagent.kernels.config import HeadPattern, SparseConfig  # noqa: E402
from ctxagent.kernels.hf_integration import disable_sparse_prefill, enable_sparse_prefill  # noqa: E402
from ctxagent.kernels.search import record_prefill  # noqa: E402


def tail_share(tail: int, n: int) -> float:
    """Share of the n x n causal matrix in its last `tail` rows."""
    tail = min(tail, n)
    return (n * (n + 1) - (n - tail) * (n - tail + 1)) / (n * (n + 1))


def reselect(length: dict, budget: float) -> dict:
    """A budgeted per-head selection redone from a results file's calibration tables (no
    model run), with its held-out recall and density from the held-out tables."""
    from ctxagent.kernels.search import select_config

    cands = [HeadPattern.from_dict(c) for c in length["candidates"]]
    tables = {name: {layer: torch.tensor(rows) for layer, rows in enumerate(t)} for name, t in length["tables"].items()}
    result = select_config(tables["calib_recall"], tables["calib_density"], cands, density_budget=budget, min_length=length["selections"][0]["config"]["min_length"])
    recall, _, density = held_out(result.choices, cands, tables["held_recall"], tables["held_density"])
    return {"selection": f"mean density <= {budget} (redone from the tables)", "config": result.config.to_dict(), "held_out_recall": recall, "held_out_density": density}


def fixed_selection(pattern: dict, model, ids: torch.Tensor, min_length: int) -> dict:
    """A selection entry for one pattern on every head, its density measured on `ids`."""
    config = SparseConfig(default=HeadPattern.from_dict(pattern), min_length=min_length)
    densities = []

    def record(layer: int, q: torch.Tensor, k: torch.Tensor) -> None:
        densities.append(layer_index(q, k, config, layer).density(k.shape[2]))

    record_prefill(model, ids, record)
    name = ", ".join(f"{k}={v}" for k, v in pattern.items())
    return {"selection": f"fixed: {name}", "config": config.to_dict(), "held_out_recall": float("nan"), "held_out_density": sum(densities) / len(densities)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/kernel_recall_gpu.json"))
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--selection", type=int, default=2, help="index into that length's selections")
    ap.add_argument("--budget", type=float, default=None, help="instead of --selection: redo a budgeted selection from the file's calibration tables")
    ap.add_argument("--patterns", nargs="+", default=None, metavar="JSON", help="instead of a selection: fixed patterns, each on every head")
    ap.add_argument("--min-length", type=int, default=4096, help="min_length of the --patterns configs")
    ap.add_argument("--tails", type=int, nargs="+", default=[0, 256])
    ap.add_argument("--needles", type=int, default=12)
    ap.add_argument("--choice", action="store_true", help="also the four-way choice (twice the time)")
    ap.add_argument("--name", default="needles_dense_tail")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    prov = provenance.stamp(args.allow_dirty)
    tokenizer, model = load_model(args.gguf, args.tokenizer, args.tokens, torch.float32)
    prompts = needle_prompts(tokenizer, texts()[1], args.tokens, args.needles)
    if args.patterns:
        source = {"provenance": {}}
        selections = [fixed_selection(json.loads(p), model, prompts[0][1], args.min_length) for p in args.patterns]
    else:
        source = json.loads(args.results.read_text())
        length = next((r for r in source["results"] if r["tokens"] == args.tokens), None)
        if length is None:
            raise SystemExit(f"{args.results} has no results at {args.tokens} tokens; it has {[r['tokens'] for r in source['results']]}")
        selections = [reselect(length, args.budget) if args.budget is not None else length["selections"][args.selection]]
    rows = []
    started = time.time()
    dense = needle_check(model, tokenizer, prompts, choice=args.choice)
    rows.append({"prefill": "dense", "density": 1.0, **dense})
    print(f"dense: greedy {dense['greedy_correct']}/{len(prompts)} ({time.time() - started:.0f} s)", flush=True)
    for selection in selections:
        for tail in args.tails:
            config = SparseConfig.from_dict({**selection["config"], "dense_tail": tail})
            settings = enable_sparse_prefill(model, config)
            check = needle_check(model, tokenizer, prompts, choice=args.choice)
            disable_sparse_prefill(model, "sdpa")
            density = min(1.0, selection["held_out_density"] + tail_share(tail, args.tokens))
            label = f"{selection['selection'].removeprefix('fixed: ')}, dense_tail {tail}" if args.patterns else f"sparse, dense_tail {tail}"
            rows.append({"prefill": label, "density": density, "sparse_calls": settings.calls["sparse"], **check})
            print(f"{label}: greedy {check['greedy_correct']}/{len(prompts)} ({time.time() - started:.0f} s)", flush=True)
    prov = provenance.finish(dict(prov))
    k = len(prompts)
    if args.patterns:
        about = "Fixed patterns, each on every head (as benchmarks/prefill.py times them); density measured on the first prompt."
    else:
        selection = selections[0]
        about = (
            f"Selection '{selection['selection']}' from {args.results.name} (commit {source['provenance'].get('commit', '?')[:12]}): held-out recall "
            f"{selection['held_out_recall']:.4f} at density {selection['held_out_density']:.4f}."
        )
    lines = [
        f"# Needles with a dense tail: SmolLM2-135M-Instruct, {args.tokens} tokens, float32",
        "",
        f"{about} {k} codes planted at evenly spread depths of the held-out text; greedy = the answer contains the code"
        + ("; choice = the code is likelier than three absent codes" if args.choice else "")
        + ". Density = the pattern's plus the tail's share (upper bound).",
        "",
        "| prefill | density | greedy | " + ("choice | " if args.choice else "") + "answers that miss the code |",
        "|---|---:|---:|" + ("---:|" if args.choice else "") + "---|",
    ]
    codes = [c for c, _ in prompts]
    for r in rows:  # a code repeats past 12 needles, so each miss also names its depth
        misses = "; ".join(f"{c} at {(i + 0.5) / k:.2f}: {a[:40]!r}" for i, (c, a) in enumerate(zip(codes, r["greedy"])) if c not in a)
        choice = f"{r['choice_correct']}/{k} | " if args.choice else ""
        lines.append(f"| {r['prefill']} | {r['density']:.3f} | {r['greedy_correct']}/{k} | {choice}{misses} |")
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text("\n".join(lines))
    (args.out / f"{args.name}.json").write_text(
        json.dumps({"provenance": prov, "tokens": args.tokens, "selections": [s["selection"] for s in selections], "rows": rows}, indent=1)
    )
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
