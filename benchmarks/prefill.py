"""Time to first token of an 8B-shaped decoder: SDPA against each sparse pattern, end to end.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/prefill.py \
        [--lengths 32768 65536 131072 262144 524288] [--layers 8]

The model is Llama-3.1-8B-shaped (hidden 4096, 32 query / 8 KV heads of 128, MLP 14336,
vocabulary 128256, RoPE theta 500000) with RANDOM weights and `--layers` decoder layers
(default 8, to fit the run in minutes; every layer costs the same, so the ratio holds for
32), in bf16 on one GPU, built by transformers. Weights do not change the time of the
dense layers, and the sparse index is built from the q/k the random weights produce, so
the sparse times include a real index build on real (if meaningless) activations; the
answer quality of sparse prefill is measured on a trained model by kernel_recall.py.

Time to first token = one forward pass of the whole prompt through the model (the same
call the `hf` engine's generate makes for its prefill) with the KV cache on, returning
the logits of the last position, then the argmax: synchronised wall time, the median of
`--reps` runs after one warm-up. SDPA is transformers' "sdpa" attention; each sparse
pattern runs through `enable_sparse_prefill` (transformers' attention interface, the
Triton kernels), with the dense tail off unless the pattern's entry sets one (the
`_tail` variants), so each column is the pattern's own time. Writes benchmarks/results/prefill_<gpu>.{md,json,png}, stamped with the
commit (benchmarks/provenance.py; where the tree is a copy without git, CTXAGENT_COMMIT).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402

PATTERNS = {
    "vertical_slash": {"kind": "vertical_slash", "n_vertical": 1024, "n_diag": 32, "last_q": 64},
    "block_sparse": {"kind": "block_sparse", "gamma": 0.95, "max_blocks": 64},
    "a_shape": {"kind": "a_shape", "sink": 64, "local": 2048},
}
# Smaller vertical-slash budgets, for `--patterns` only: what time to first token a lower
# density buys (whether a real model keeps its answers at that density is kernel_recall's).
LIGHTER = {
    "vertical_slash_512_16": {"kind": "vertical_slash", "n_vertical": 512, "n_diag": 16, "last_q": 64},
    "vertical_slash_256_8": {"kind": "vertical_slash", "n_vertical": 256, "n_diag": 8, "last_q": 64},
    # the same with the last query rows dense (the question's rows: needles_dense_tail.py)
    "vertical_slash_256_8_tail64": {"kind": "vertical_slash", "n_vertical": 256, "n_diag": 8, "last_q": 64, "dense_tail": 64},
    "vertical_slash_256_8_tail256": {"kind": "vertical_slash", "n_vertical": 256, "n_diag": 8, "last_q": 64, "dense_tail": 256},
}


def build_model(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        num_hidden_layers=layers,
        vocab_size=128256,
        max_position_embeddings=1 << 20,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.eval()
    return model


def attention_skipped(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """An attention function that costs nothing (a copy of q as its output): what the
    model's other layers take alone, the ceiling on any attention speed-up."""
    return query.transpose(1, 2).contiguous(), None


def time_to_first_token(model, ids: torch.Tensor, reps: int) -> float:
    def once() -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            logits = model(ids, use_cache=True, logits_to_keep=1).logits
            logits[:, -1].argmax(-1).item()
        return time.perf_counter() - start

    once()  # warm-up: Triton compiles and autotunes per shape
    times = sorted(once() for _ in range(reps))
    torch.cuda.empty_cache()
    return times[len(times) // 2]


def profile(model, ids: torch.Tensor, name: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof, torch.no_grad():
        model(ids, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
    print(f"profile {name}:\n" + prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60), flush=True)


def write(results: list[dict], args, prov: dict, gpu: str) -> None:
    slug = args.name or "prefill_" + re.sub(r"[^A-Za-z0-9]+", "_", gpu).strip("_").lower()
    args.out.mkdir(parents=True, exist_ok=True)
    prov = provenance.finish(dict(prov))
    names = ["sdpa", *PATTERNS, "no_attention"]
    lines = [
        f"# Time to first token, Llama-3.1-8B-shaped decoder with random weights ({args.layers} layers), {gpu}",
        "",
        "bf16, batch 1, one prefill forward with KV cache + argmax of the last logits; median of "
        f"{args.reps} after a warm-up. Sparse times include building every layer's index. RANDOM weights: "
        "times only (answer quality on a trained model: kernel_recall_*). `no_attention` replaces attention "
        "by a copy of q: the other layers alone, so `x no_attention` is the ceiling on any attention speed-up.",
        "",
        "| tokens | " + " | ".join(f"{n} s" for n in names) + " | " + " | ".join(f"x {n}" for n in [*PATTERNS, "no_attention"]) + " |",
        "|---:|" + "---:|" * (2 * len(names) - 1),
    ]
    for r in results:
        cells = [f"{r[n]:.2f}" if isinstance(r.get(n), float) else str(r.get(n, "-")) for n in names]
        ratios = [f"{r['sdpa'] / r[n]:.2f}" if isinstance(r.get(n), float) and isinstance(r.get("sdpa"), float) else "-" for n in [*PATTERNS, "no_attention"]]
        lines.append(f"| {r['tokens']} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lines += ["", provenance.markdown_line(prov), ""]
    text = "\n".join(lines)
    (args.out / f"{slug}.md").write_text(text)
    (args.out / f"{slug}.json").write_text(
        json.dumps({"provenance": prov, "gpu": gpu, "layers": args.layers, "weights": "random", "reps": args.reps, "results": results}, indent=1)
    )
    print(text, flush=True)
    plot(results, args.layers, gpu, args.out / f"{slug}.png")


def plot(results: list[dict], layers: int, gpu: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for n in PATTERNS:
        ok = [r for r in results if isinstance(r.get(n), float) and isinstance(r.get("sdpa"), float)]
        ax.plot([r["tokens"] for r in ok], [r["sdpa"] / r[n] for r in ok], "-o", label=n)
    ok = [r for r in results if isinstance(r.get("no_attention"), float) and isinstance(r.get("sdpa"), float)]
    ax.plot([r["tokens"] for r in ok], [r["sdpa"] / r["no_attention"] for r in ok], "--", color="grey", label="ceiling (no attention)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("TTFT speed-up over SDPA")
    ax.axhline(1, color="grey", lw=0.5)
    ax.legend()
    ax.set_title(f"8B-shaped, random weights, {layers} layers - {gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def replot(json_path: Path) -> None:
    """Redraw the plot of a results file (the GPU machine returns only a few files)."""
    data = json.loads(json_path.read_text())
    plot(data["results"], data["layers"], data["gpu"], json_path.with_suffix(".png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[32768, 65536, 131072, 262144, 524288])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=[*PATTERNS, *LIGHTER])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default=None, help="results go to <out>/<name>.{md,json,png} (default prefill_<gpu>)")
    ap.add_argument("--allow-dirty", action="store_true")
    ap.add_argument("--replot", type=Path, default=None, help="only redraw the plot of this results JSON")
    ap.add_argument("--profile", action="store_true", help="also print where each variant's GPU time goes (torch profiler) at the first length")
    args = ap.parse_args()
    if args.replot:
        return replot(args.replot)
    PATTERNS.update({name: LIGHTER[name] for name in args.patterns if name in LIGHTER})
    for name in set(PATTERNS) - set(args.patterns):
        PATTERNS.pop(name)
    prov = provenance.stamp(args.allow_dirty)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/prefill.py needs a CUDA GPU")
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from ctxagent.kernels.hf_integration import disable_sparse_prefill, enable_sparse_prefill

    gpu = torch.cuda.get_device_name()
    model = build_model(args.layers)
    results = []
    for n in args.lengths:
        ids = torch.randint(0, model.config.vocab_size, (1, n), device="cuda", generator=torch.Generator("cuda").manual_seed(n))
        row: dict = {"tokens": n}
        for name in ["sdpa", *PATTERNS, "no_attention"]:
            try:
                if name == "sdpa":
                    disable_sparse_prefill(model, "sdpa")
                elif name == "no_attention":
                    disable_sparse_prefill(model, "sdpa")
                    AttentionInterface.register("no_attention", attention_skipped)
                    AttentionMaskInterface.register("no_attention", sdpa_mask)
                    model.set_attn_implementation("no_attention")
                else:
                    # the pattern's own time: no dense tail unless its entry names one
                    settings = enable_sparse_prefill(model, {"dense_tail": 0, **PATTERNS[name], "min_length": 8192})
                row[name] = time_to_first_token(model, ids, args.reps)
                if args.profile and n == args.lengths[0]:
                    profile(model, ids, name)
                if name in PATTERNS:
                    row[f"{name}_sparse_calls"] = settings.calls["sparse"]
                print(f"{n:>7} {name:<15} {row[name]:8.3f} s", flush=True)
            except torch.OutOfMemoryError as exc:
                row[name] = f"out of memory: {str(exc)[:80]}"
                torch.cuda.empty_cache()
                print(f"{n:>7} {name:<15} out of memory", flush=True)
        results.append(row)
        write(results, args, prov, gpu)  # after every length, so a cut-off run keeps what it measured
        del ids


if __name__ == "__main__":
    main()
