"""Time to first token of an 8B-shaped decoder: SDPA against each sparse pattern, end to end.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/prefill.py \
        [--lengths 32768 65536 131072 262144 524288] [--layers 8]
    # 512K and 1M tokens on one 80 GB GPU: chunked prefill, sparse against dense at the same chunks
    ... benchmarks/prefill.py --lengths 524288 1048576 --prefill-chunk 32768 --reps 1 --warmup-tokens 65536 \
        --patterns vertical_slash --no-ceiling --name prefill_chunked_h100

The model is Llama-3.1-8B-shaped (hidden 4096, 32 query / 8 KV heads of 128, MLP 14336,
vocabulary 128256, RoPE theta 500000) with RANDOM weights and `--layers` decoder layers
(default 8, to fit the run in minutes; every layer costs the same, so the ratio holds for
32), in bf16 on one GPU, built by transformers. `--shape qwen2.5-0.5b --layers 24` builds the
needle benchmark's model instead (same random-weight method), for its ceiling. Weights do not change the time of the
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

# benchmarks/ goes last on the path: its kernels.py must not shadow the `kernels` package
# that transformers imports when it is installed (python puts the script's folder first)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(_HERE)]
import provenance  # noqa: E402
from plotting import pyplot  # noqa: E402

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
    # the default as the hf engine runs it: 1024 / 32 with its 256-row dense tail
    "vertical_slash_tail256": {"kind": "vertical_slash", "n_vertical": 1024, "n_diag": 32, "last_q": 64, "dense_tail": 256},
    # the same in blocks of 128 (16 diagonals of 128 span the tokens 32 of 64 do): larger tiles per score
    "vertical_slash_b128_tail256": {"kind": "vertical_slash", "n_vertical": 1024, "n_diag": 16, "last_q": 64, "dense_tail": 256, "block": 128},
}


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


# Model shapes (`--shape`): transformers' class name and its config. qwen2.5-0.5b is the
# real model of issue 26 (Qwen2.5-Coder-0.5B-Instruct: 24 layers, 14 / 2 heads of 64, tied
# embeddings, biased q/k/v), so its `no_attention` column is the ceiling on the needle
# benchmark's speed-up (benchmarks/needles_real.py) whatever the attention does.
SHAPES = {
    "llama-8b": ("Llama", "Llama-3.1-8B", dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                                               head_dim=128, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=False)),
    "qwen2.5-0.5b": ("Qwen2", "Qwen2.5-0.5B", dict(hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2,
                                                   head_dim=64, vocab_size=151936, rope_theta=1000000.0, tie_word_embeddings=True)),
    "tiny": ("Llama", "toy", dict(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2,
                                  head_dim=64, vocab_size=1000, rope_theta=500000.0, tie_word_embeddings=False)),
}


def build_model(layers: int, shape: str = "llama-8b"):
    """A model of `shape` with random weights and `layers` decoder layers; "tiny" (for --quick)
    is the 8B layout at a toy size, so the script's every path runs on a CPU in seconds."""
    import transformers

    family, _, dims = SHAPES[shape]
    dims = dict(dims)
    theta = dims.pop("rope_theta")
    config = getattr(transformers, f"{family}Config")(
        **dims,
        num_hidden_layers=layers,
        max_position_embeddings=1 << 21,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
    )
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = getattr(transformers, f"{family}ForCausalLM")(config).to(torch.bfloat16 if DEVICE == "cuda" else torch.float32)
    model.eval()
    return model


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def attention_skipped(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """An attention function that costs nothing (a copy of q as its output): what the
    model's other layers take alone, the ceiling on any attention speed-up."""
    return query.transpose(1, 2).contiguous(), None


def time_to_first_token(model, ids: torch.Tensor, reps: int, chunk: int | None = None, warmup_tokens: int | None = None) -> tuple[float, float]:
    """Median seconds to the first token, and the peak GPU memory (GiB) of the timed runs.
    With `chunk`, the prompt goes through `chunked_prefill` that many tokens at a time.
    The warm-up (Triton compiles and autotunes) runs on the first `warmup_tokens` tokens
    (default: the whole prompt), enough to compile every kernel once."""
    from ctxagent.kernels.chunked_prefill import chunked_prefill

    def once(x: torch.Tensor) -> float:
        synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            if chunk:
                _, logits = chunked_prefill(model, x, chunk)
            else:
                logits = model(x, use_cache=True, logits_to_keep=1).logits[:, -1]
            logits.argmax(-1).item()
        return time.perf_counter() - start

    once(ids[:, :warmup_tokens] if warmup_tokens else ids)
    if DEVICE != "cuda":
        times = sorted(once(ids) for _ in range(reps))
        return times[len(times) // 2], 0.0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    times = sorted(once(ids) for _ in range(reps))
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.empty_cache()
    return times[len(times) // 2], peak


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
    names = ["sdpa", *PATTERNS] + ([] if args.no_ceiling else ["no_attention"])
    how = (
        f"chunked prefill, {args.prefill_chunk} tokens a chunk over the cached keys (kernels.chunked_prefill; `sdpa` = dense SDPA "
        "chunk by chunk with a lower-right causal bias, the same chunks)"
        if args.prefill_chunk
        else "one prefill forward with KV cache"
    )
    lines = [
        f"# Time to first token, {SHAPES[args.shape][1]}-shaped decoder with random weights ({args.layers} layers), {gpu}",
        "",
        f"{'bf16' if DEVICE == 'cuda' else 'float32 on a CPU (the torch reference: a smoke test, not a speed)'}, batch 1, {how} + argmax of the last logits (only the last position's logits are computed); median of "
        f"{args.reps} after a warm-up. Sparse times include building every layer's index. RANDOM weights: "
        "times only (answer quality on a trained model: kernel_recall_*, needles_real). `no_attention` replaces attention "
        "by a copy of q: the other layers alone, so `x no_attention` is the ceiling on any attention speed-up. "
        "Peak = torch.cuda.max_memory_allocated over the timed runs (weights and KV cache included).",
        *(["", "SDPA not run here (`--no-sdpa`): the sparse patterns' times and peaks only, no ratios."] if args.no_sdpa else []),
        "",
        "| tokens | " + " | ".join(f"{n} s" for n in names) + " | " + " | ".join(f"x {n}" for n in names[1:])
        + " | " + " | ".join(f"{n} peak GiB" for n in names) + " |",
        "|---:|" + "---:|" * (3 * len(names) - 1),
    ]
    for r in results:
        cells = [f"{r[n]:.2f}" if isinstance(r.get(n), float) else str(r.get(n, "-")) for n in names]
        ratios = [f"{r['sdpa'] / r[n]:.2f}" if isinstance(r.get(n), float) and isinstance(r.get("sdpa"), float) else "-" for n in names[1:]]
        peaks = [f"{r[n + '_peak_gib']:.1f}" if f"{n}_peak_gib" in r else "-" for n in names]
        lines.append(f"| {r['tokens']} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " | " + " | ".join(peaks) + " |")
    lines += ["", provenance.markdown_line(prov), ""]
    text = "\n".join(lines)
    (args.out / f"{slug}.md").write_text(text)
    (args.out / f"{slug}.json").write_text(
        json.dumps({"provenance": prov, "gpu": gpu, "shape": args.shape, "layers": args.layers, "weights": "random", "reps": args.reps, "prefill_chunk": args.prefill_chunk, "results": results}, indent=1)
    )
    print(text, flush=True)
    plot(results, args.layers, gpu, args.out / f"{slug}.png", SHAPES[args.shape][1])


def plot(results: list[dict], layers: int, gpu: str, path: Path, shape: str = "Llama-3.1-8B") -> None:
    plt = pyplot()
    if plt is None:
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
    ax.set_title(f"{shape}-shaped, random weights, {layers} layers - {gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def replot(json_path: Path) -> None:
    """Redraw the plot of a results file (the GPU machine returns only a few files)."""
    data = json.loads(json_path.read_text())
    plot(data["results"], data["layers"], data["gpu"], json_path.with_suffix(".png"), SHAPES[data.get("shape", "llama-8b")][1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[32768, 65536, 131072, 262144, 524288])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--shape", choices=[s for s in SHAPES if s != "tiny"], default="llama-8b", help="the decoder's shape (qwen2.5-0.5b: the needle benchmark's model)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=[*PATTERNS, *LIGHTER])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default=None, help="results go to <out>/<name>.{md,json,png} (default prefill_<gpu>)")
    ap.add_argument("--allow-dirty", action="store_true")
    ap.add_argument("--replot", type=Path, default=None, help="only redraw the plot of this results JSON")
    ap.add_argument("--profile", action="store_true", help="also print where each variant's GPU time goes (torch profiler) at the first length")
    ap.add_argument("--prefill-chunk", type=int, default=None, help="prefill this many tokens at a time over the cached keys (all variants, SDPA too)")
    ap.add_argument("--warmup-tokens", type=int, default=None, help="warm up on this many tokens, not the whole prompt (Triton compiles once per kernel shape)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the no_attention column")
    ap.add_argument("--no-sdpa", action="store_true",
                    help="skip the SDPA baseline (no ratios): a rerun of the sparse patterns' time and peak memory where dense is already measured (4 min at 1M)")
    ap.add_argument("--memory-cap-gib", type=float, default=None, help="let torch's allocator use at most this much of the GPU (e.g. 78 on a bigger card: does it fit an 80 GB H100?)")
    ap.add_argument("--quick", action="store_true", help="a smoke test: a toy-sized model, 4096 tokens in chunks of 1024 (runs on a CPU)")
    args = ap.parse_args()
    min_length = 8192
    if args.quick:
        args.lengths, args.reps, args.layers, min_length = [4096], 1, 2, 2048
        args.prefill_chunk = args.prefill_chunk or 1024
        args.name = args.name or "prefill_quick"
    if args.replot:
        return replot(args.replot)
    PATTERNS.update({name: LIGHTER[name] for name in args.patterns if name in LIGHTER})
    for name in set(PATTERNS) - set(args.patterns):
        PATTERNS.pop(name)
    prov = provenance.stamp(args.allow_dirty)
    if not torch.cuda.is_available() and not args.quick:
        raise SystemExit("benchmarks/prefill.py needs a CUDA GPU (--quick runs a toy model on a CPU)")
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from ctxagent.kernels.hf_integration import causal_or_none_mask, disable_sparse_prefill, enable_sparse_prefill

    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU"
    if args.memory_cap_gib and DEVICE == "cuda":
        # The allocator raises OutOfMemoryError past the cap exactly as a card of that size would run out.
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_cap_gib * 2**30 / total))
        gpu += f", allocator capped at {args.memory_cap_gib:g} GiB of {total / 2**30:.0f}"
    model = build_model(args.layers, "tiny" if args.quick else args.shape)
    results = []
    for n in args.lengths:
        ids = torch.randint(0, model.config.vocab_size, (1, n), device=DEVICE, generator=torch.Generator(DEVICE).manual_seed(n))
        row: dict = {"tokens": n}
        for name in ([] if args.no_sdpa else ["sdpa"]) + [*PATTERNS] + ([] if args.no_ceiling else ["no_attention"]):
            try:
                if name == "sdpa" and args.prefill_chunk:
                    # dense everywhere (min_length out of reach) through our attention function, whose
                    # mask builder hands SDPA no [chunk, keys] mask: transformers' own would build one
                    enable_sparse_prefill(model, {"kind": "dense", "min_length": 1 << 62})
                elif name == "sdpa":
                    disable_sparse_prefill(model, "sdpa")
                elif name == "no_attention":
                    disable_sparse_prefill(model, "sdpa")
                    AttentionInterface.register("no_attention", attention_skipped)
                    AttentionMaskInterface.register("no_attention", causal_or_none_mask if args.prefill_chunk else sdpa_mask)
                    model.set_attn_implementation("no_attention")
                else:
                    # the pattern's own time: no dense tail unless its entry names one
                    settings = enable_sparse_prefill(model, {"dense_tail": 0, **PATTERNS[name], "min_length": min_length})
                row[name], row[f"{name}_peak_gib"] = time_to_first_token(model, ids, args.reps, args.prefill_chunk, args.warmup_tokens)
                if args.profile and n == args.lengths[0]:
                    profile(model, ids, name)
                if name in PATTERNS:
                    row[f"{name}_sparse_calls"] = settings.calls["sparse"]
                print(f"{n:>7} {name:<15} {row[name]:8.3f} s  peak {row[f'{name}_peak_gib']:.1f} GiB", flush=True)
            except torch.OutOfMemoryError as exc:
                row[name] = f"out of memory: {str(exc)[:80]}"
                torch.cuda.empty_cache()
                print(f"{n:>7} {name:<15} out of memory", flush=True)
            if name in PATTERNS and args.quick:
                assert settings.calls["sparse"] > 0, "the quick run never went sparse"
        results.append(row)
        write(results, args, prov, gpu)  # after every length, so a cut-off run keeps what it measured
        del ids


if __name__ == "__main__":
    main()
