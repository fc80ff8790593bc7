"""Sparse prefill on a real model's own attention, at its served length, on a GPU:
per-head budgets searched on one text, then recall, density and needle answers measured
on other text, sparse prefill on vs off.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/kernel_recall_gpu.py \
        --gguf PATH/SmolLM2-135M-Instruct.Q4_1.gguf --tokenizer DIR --tokens 8192 32768

The embedded SmolLM2-135M-Instruct (loaded from its GGUF by transformers, no ctxagent
engine, so the script needs only torch, triton and transformers), in float32 so that
sparse and dense answers differ by the pattern, not by bf16 rounding (the kernels then
multiply in tf32). At lengths past its 8192-token window the RoPE is stretched with
YaRN (factor = tokens / 8192): then the 135M model's answers mean little even densely,
so read 32K as attention shape.

Texts: calibration is two Austen novels (Pride and Prejudice, Emma); held-out is the
QuALITY articles (other authors, other genre), both shipped in ctxagent/evaluation/data.

For each length:
1. every candidate pattern scored on every (layer, head) of the calibration text and of
   the held-out text (recall: share of a sampled row's true attention mass on the keys
   the pattern computes; density: computed share of the causal matrix);
2. per-head selection on the calibration tables only (search.select_config): "target"
   keeps the cheapest pattern with recall >= --target per head (dense if none); "budget"
   maximises mean recall within a mean density of --budget. Held-out recall and density
   are the chosen pattern's, head by head, on the held-out text, where each pattern
   builds its own index from that text's q/k (the same numbers a prefill with the config
   would compute);
3. an oracle: each sampled row keeping its own heaviest keys at the same density, the
   ceiling for any pattern that spends its budget evenly over rows;
4. needles: a sentence with a code planted at --needles depths of the held-out text.
   Greedy answers (does the answer contain the code?) and a four-way choice (is the
   planted code the most likely continuation of "The secret code for the vault is",
   against three codes that are not in the text?), with dense prefill, with each
   searched config, and, as a check of the kernels themselves, with a pattern that
   covers every key (must answer as dense does).
Writes benchmarks/results/kernel_recall_gpu.{md,json}, stamped with the commit; the
JSON keeps every table, so selections can be redone offline.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402

from ctxagent.kernels.hf_integration import disable_sparse_prefill, enable_sparse_prefill  # noqa: E402
from ctxagent.kernels.search import length_candidates, record_prefill, score_candidates, select_config  # noqa: E402

NATIVE = 8192
DATA = Path(__file__).resolve().parent.parent / "ctxagent" / "evaluation" / "data"
CODES = ["7342", "5861", "2093", "9417", "6158", "3726", "8405", "1964", "4539", "6271", "2817", "9053"]
DECOYS = ["4170", "8826", "3391"]


def load_model(gguf: Path, tokenizer_dir: Path, tokens: int, dtype: torch.dtype):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tokenizer_dir)
    if tokens > NATIVE:
        theta = config.rope_parameters["rope_theta"]
        config.rope_parameters = {"rope_type": "yarn", "factor": tokens / NATIVE, "original_max_position_embeddings": NATIVE, "rope_theta": theta}
        config.max_position_embeddings = tokens
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, config=config, dtype=dtype).to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return AutoTokenizer.from_pretrained(tokenizer_dir), model


def texts() -> tuple[str, str]:
    """Calibration prose (two Austen novels) and held-out prose (the QuALITY articles)."""
    calib = "\n\n".join((DATA / f).read_text() for f in ("pride_and_prejudice.txt", "emma.txt"))
    held = "\n\n".join(json.loads(line)["article"] for line in (DATA / "quality.jsonl").read_text().splitlines() if line.strip())
    return calib, held


def to_length(tokenizer, text: str, n: int) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    while ids.shape[1] < n:  # short text repeats (repeats add copy structure)
        ids = torch.cat([ids, ids], 1)
    return ids[:, :n]


def oracle_recall(model, ids: torch.Tensor, densities: list[float], rows_n: int) -> dict[float, float]:
    """Mean recall when each sampled row keeps its own heaviest keys, the same share of
    its causal keys for every row (= density), over all layers and heads."""
    sums = {d: 0.0 for d in densities}
    count = 0

    def record(layer: int, q: torch.Tensor, k: torch.Tensor) -> None:
        nonlocal count
        n = q.shape[2]
        g = torch.Generator().manual_seed(layer + 200)
        rows = torch.cat([torch.randint(0, n, (rows_n,), generator=g), torch.tensor([n - 1])]).sort().values.to(q.device)
        G = q.shape[1] // k.shape[1]
        logits = torch.matmul(q[0][:, rows].float(), k[0].repeat_interleave(G, 0).float().transpose(-1, -2)) * q.shape[-1] ** -0.5
        probs = torch.softmax(logits.masked_fill_(torch.arange(n, device=q.device)[None, :] > rows[:, None], float("-inf")), -1)
        top = probs.sort(-1, descending=True).values.cumsum(-1)  # [H, R, n]
        for d in densities:
            keep = (d * (rows + 1).float()).ceil().long().clamp(1, n) - 1  # keys each row keeps, minus one
            sums[d] += float(top.gather(-1, keep[None, :, None].expand(top.shape[0], -1, 1)).mean())
        count += 1

    record_prefill(model, ids, record)
    return {d: s / count for d, s in sums.items()}


def needle_prompts(tokenizer, text: str, n: int, count: int) -> list[tuple[str, torch.Tensor]]:
    question = "\n\nQuestion: What is the secret code for the vault? Answer with the number only."
    room = n - 120
    filler = to_length(tokenizer, text, room)[0]
    prompts = []
    for i in range(count):
        code, depth = CODES[i % len(CODES)], (i + 0.5) / count
        cut = int(room * depth)
        body = tokenizer.decode(filler[:cut]) + f" The secret code for the vault is {code}. " + tokenizer.decode(filler[cut:])
        chat = tokenizer.apply_chat_template([{"role": "user", "content": body + question}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
        prompts.append((code, chat["input_ids"]))
    return prompts


def needle_check(model, tokenizer, prompts, choice: bool = True) -> dict:
    """Greedy answers, and (with `choice`) the four-way choice by log-probability after an
    answer prefix."""
    prefix = tokenizer("The secret code for the vault is", add_special_tokens=False, return_tensors="pt")["input_ids"]
    greedy, chosen = [], []
    for code, ids in prompts:
        with torch.inference_mode():
            gen = model.generate(ids.to(model.device), max_new_tokens=24, do_sample=False)
            greedy.append(tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).strip())
            if not choice:
                continue
            context = torch.cat([ids, prefix], 1).to(model.device)
            out = model(context, use_cache=True)
            scores = {}
            for option in [code, *DECOYS]:
                tail = tokenizer(" " + option, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
                cache = copy.deepcopy(out.past_key_values)  # the prompt's cache, untouched by other options
                step = model(tail, past_key_values=cache, use_cache=True).logits
                logp = torch.cat([out.logits[:, -1:], step[:, :-1]], 1).log_softmax(-1)
                scores[option] = float(logp.gather(-1, tail[..., None]).sum())
            chosen.append(max(scores, key=scores.get))
    codes = [c for c, _ in prompts]
    result = {"greedy": greedy, "greedy_correct": sum(c in a for c, a in zip(codes, greedy))}
    if choice:
        result |= {"choice": chosen, "choice_correct": sum(c == a for c, a in zip(codes, chosen))}
    return result


def table(scores: dict[int, torch.Tensor]) -> list:
    return [[[round(float(x), 4) for x in row] for row in scores[layer].tolist()] for layer in sorted(scores)]


def held_out(choice_rows, cands, hold_recall, hold_density) -> tuple[float, float, float]:
    """Mean recall, min head recall and mean density of the chosen patterns on held-out text."""
    index = {p: i for i, p in enumerate(cands)}
    recalls, densities = [], []
    for layer, heads in choice_rows.items():
        for h, (pattern, _, _) in enumerate(heads):
            if pattern.kind == "dense":
                recalls.append(1.0)
                densities.append(1.0)
            else:
                recalls.append(float(hold_recall[layer][index[pattern], h]))
                densities.append(float(hold_density[layer][index[pattern], h]))
    return sum(recalls) / len(recalls), min(recalls), sum(densities) / len(densities)


def run_length(args, n: int, calib: str, held: str) -> dict:
    dtype = getattr(torch, args.dtype)
    tokenizer, model = load_model(args.gguf, args.tokenizer, n, dtype)
    cands = length_candidates(n, args.block)
    calib_ids, held_ids = to_length(tokenizer, calib, n), to_length(tokenizer, held, n)
    started = time.time()
    cal_r, cal_d = score_candidates(model, calib_ids, cands, rows=args.rows, block=args.block)
    hold_r, hold_d = score_candidates(model, held_ids, cands, rows=args.rows, block=args.block)
    oracle = oracle_recall(model, held_ids, [0.05, 0.1, 0.15, 0.25], args.rows)
    print(f"{n}: scored {len(cands)} candidates twice in {time.time() - started:.1f} s; oracle {oracle}", flush=True)
    prompts = needle_prompts(tokenizer, held, n, args.needles) if args.needles else []
    needles = {"dense": needle_check(model, tokenizer, prompts)}
    settings = enable_sparse_prefill(model, {"kind": "a_shape", "sink": 64, "local": 2 * n, "min_length": NATIVE // 2})
    needles["covering"] = needle_check(model, tokenizer, prompts)
    needles["covering"]["sparse_calls"] = settings.calls["sparse"]
    disable_sparse_prefill(model, "sdpa")
    selections = []
    modes = [("target", None)] + [("budget", b) for b in args.budget]
    for mode, budget in modes:
        result = select_config(cal_r, cal_d, cands, target_recall=args.target, density_budget=budget, block=args.block, min_length=NATIVE // 2)
        chosen = [c for heads in result.choices.values() for c in heads]
        kinds: dict[str, int] = {}
        for pattern, _, _ in chosen:
            kinds[pattern.kind] = kinds.get(pattern.kind, 0) + 1
        recall, recall_min, density = held_out(result.choices, cands, hold_r, hold_d)
        result.config.dense_tail = 0  # the needles of the patterns alone (needles_dense_tail.py adds a tail)
        settings = enable_sparse_prefill(model, result.config)
        check = needle_check(model, tokenizer, prompts)
        check["sparse_calls"] = settings.calls["sparse"]
        disable_sparse_prefill(model, "sdpa")
        row = {
            "selection": f"recall >= {args.target} per head" if mode == "target" else f"mean density <= {budget}",
            "search_recall": sum(r for _, r, _ in chosen) / len(chosen),
            "search_density": sum(d for _, _, d in chosen) / len(chosen),
            "heads_by_kind": kinds,
            "held_out_recall": recall,
            "held_out_recall_min_head": recall_min,
            "held_out_density": density,
            "needles": check,
            "config": result.config.to_dict(),
        }
        print(json.dumps({k: v for k, v in row.items() if k not in ("config", "needles")}), f"greedy {check['greedy_correct']} choice {check['choice_correct']}", flush=True)
        selections.append(row)
    out = {
        "tokens": n,
        "rope": "native" if n <= NATIVE else f"yarn x{n / NATIVE:g}",
        "dtype": args.dtype,
        "needle_count": len(prompts),
        "needles_dense": needles["dense"],
        "needles_covering": needles["covering"],
        "oracle": {str(d): r for d, r in oracle.items()},
        "candidates": [p.to_dict() for p in cands],
        "candidate_means": [
            {"calib_recall": float(torch.stack([cal_r[l][c] for l in cal_r]).mean()), "calib_density": float(torch.stack([cal_d[l][c] for l in cal_d]).mean()),
             "held_recall": float(torch.stack([hold_r[l][c] for l in hold_r]).mean()), "held_density": float(torch.stack([hold_d[l][c] for l in hold_d]).mean())}
            for c in range(len(cands))
        ],
        "tables": {"calib_recall": table(cal_r), "calib_density": table(cal_d), "held_recall": table(hold_r), "held_density": table(hold_d)},
        "selections": selections,
        "seconds": time.time() - started,
    }
    del model
    torch.cuda.empty_cache()
    return out


def write(results: list[dict], args, prov: dict) -> None:
    prov = provenance.finish(dict(prov))
    lines = [
        "# Sparse prefill on SmolLM2-135M-Instruct's own attention (GPU)",
        "",
        f"Per-head patterns chosen on two Austen novels, measured on the QuALITY articles (other text). Recall = share of a sampled row's "
        f"true attention mass on the computed keys, mean over all 30 layers x 9 heads ({args.rows + 1} rows per layer, block {args.block}); "
        "density = computed share of the causal matrix. Oracle = every row keeping its own heaviest keys at that density. "
        f"Needles: {args.needles} codes planted at evenly spread depths of the held-out text; greedy = the answer contains the code; "
        "choice = the planted code is likelier than three codes not in the text after 'The secret code for the vault is'. "
        f"Model in {args.dtype}; past 8192 tokens RoPE is stretched with YaRN, and the 135M model then answers poorly even densely.",
        "",
        "| tokens | RoPE | per-head selection | held-out recall (min head) | held-out density | oracle recall at that density | heads by pattern | greedy dense / sparse | choice dense / sparse | covering pattern greedy / choice |",
        "|---:|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        nd, nc, k = r["needles_dense"], r["needles_covering"], r["needle_count"]
        for s in r["selections"]:
            ns = s["needles"]
            oracle = oracle_at(r["oracle"], s["held_out_density"])
            pair = lambda a, b: f"{a}/{k} / {b}/{k}" if k else "not run"  # noqa: E731
            lines.append(
                f"| {r['tokens']} | {r['rope']} | {s['selection']} | {s['held_out_recall']:.4f} ({s['held_out_recall_min_head']:.3f}) | {s['held_out_density']:.4f} | "
                f"{oracle} | {s['heads_by_kind']} | {pair(nd['greedy_correct'], ns['greedy_correct'])} | {pair(nd['choice_correct'], ns['choice_correct'])} | "
                f"{pair(nc['greedy_correct'], nc['choice_correct'])} |"
            )
    for r in results:
        lines += ["", f"Candidates at {r['tokens']} tokens, mean over heads (oracle on held-out text: "
                  + ", ".join(f"{float(d):.2f} -> {v:.3f}" for d, v in r["oracle"].items()) + "):", "",
                  "| pattern | calibration recall / density | held-out recall / density |", "|---|---:|---:|"]
        lines += [f"| {p} | {m['calib_recall']:.3f} / {m['calib_density']:.3f} | {m['held_recall']:.3f} / {m['held_density']:.3f} |" for p, m in zip(r["candidates"], r["candidate_means"])]
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text("\n".join(lines))
    (args.out / f"{args.name}.json").write_text(json.dumps({"provenance": prov, "results": results}))
    print("\n".join(lines), flush=True)


def oracle_at(oracle: dict[str, float], density: float) -> str:
    """The oracle's recall at the measured density, interpolated between the measured points."""
    pts = sorted((float(d), r) for d, r in oracle.items())
    for (d0, r0), (d1, r1) in zip(pts, pts[1:]):
        if d0 <= density <= d1:
            return f"{r0 + (r1 - r0) * (density - d0) / (d1 - d0):.3f}"
    return "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True, help="folder with the model's config.json and tokenizer files")
    ap.add_argument("--tokens", type=int, nargs="+", default=[8192, 32768])
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--budget", type=float, nargs="+", default=[0.16, 0.15], help="mean densities for the budgeted per-head selections (on calibration text; held-out density comes out lower when adaptive patterns win)")
    ap.add_argument("--needles", type=int, default=12, help="0 skips the needle checks (a recall-only run, e.g. on a CPU)")
    ap.add_argument("--name", default="kernel_recall_gpu", help="results go to <out>/<name>.{md,json}")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rows", type=int, default=63)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    prov = provenance.stamp(args.allow_dirty)
    calib, held = texts()
    results = []
    for n in args.tokens:
        results.append(run_length(args, n, calib, held))
        write(results, args, prov)


if __name__ == "__main__":
    main()
