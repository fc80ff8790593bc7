"""Needle answers and prefill time of sparse prefill on a real long-context model
(issue 26): dense SDPA against per-head searched configs and the default, at the model's
native length and stretched with YaRN, with enough questions to rank configs.

    CTXAGENT_COMMIT=$(git rev-parse HEAD) PYTHONPATH=. python benchmarks/needles_real.py \
        --model $MODEL --tokens 32768 --needles 64 --name needles_qwen_32k
    ... --tokens 131072 --name needles_qwen_128k        # YaRN x4 past the 32K window
    ... --quick                                          # 1K tokens, 4 needles: a smoke test (CPU too)
    ... --task squad --needles 48 --tokens 32768 131072  # real questions over Wikipedia instead of needles

MODEL: a .gguf (converted once into a transformers folder, `--convert-dir`; needs the
`gguf` package) or a transformers folder. Qwen2.5-Coder-0.5B-Instruct (24 layers, 14
query / 2 KV heads of 64, 32K native) is the model of issue 26
(ctxagent.evaluation.eval_models fetches it). bf16 on a GPU; float32 and the torch
reference on a CPU. Loads with transformers alone: no ctxagent engine, no pydantic.

Configs (`--configs`, in this order):
- `dense`: transformers' SDPA;
- `searched_B` for each `--budgets` B: per-head patterns from `search.score_candidates`
  over `length_candidates(tokens)` on the CALIBRATION text (two Austen novels) and
  `select_config(density_budget=B)`; the needles are in other text; 256-row dense tail
  (the config default);
- `searched_fast_B` (`--candidates fast`): the same search over `fast_candidates(tokens)`,
  the patterns whose index is as cheap as the default's, so that time follows density;
- `default`: vertical-slash 1024 columns / 32 diagonals on every head, 256-row dense tail.

Needles: `--needles` sentences "The locker code of <name> is <code>." (distinct names and
codes), one per prompt, planted at evenly spread depths of the held-out text (the QuALITY
articles, then Persuasion; repeated if short), then "What is the locker code of <name>?".
Greedy = the answer (up to 24 tokens, until a number of 4+ digits is out) contains the code; choice = after "The locker code of
<name> is", the planted code is likelier than three codes not in the text. One prefill
per prompt serves both (the cache is cropped back between them). Prefill seconds = that
forward, synchronised, index building included; the table gives the median over the
prompts. Density = computed share of the causal matrix, measured on the first prompt (every
layer's index; dense heads count 1; plus the tail's rows, an upper bound). 95% Wilson
intervals. `--task squad`: the 48 bundled SQuAD 2.0 questions instead, each over its whole
Wikipedia article among others (ctxagent.evaluation.squad): questions and text nobody here
wrote or picked for this test, scored by whole-word containment of a reference answer. `--chunked CONFIG` runs a config again with chunked prefill (`--prefill-chunk`
tokens at a time over the cached keys) and counts the answers equal to its unchunked run.
Results after every config to <out>/<name>.{md,json}; the searched configs
are kept in the JSON. `--max-seconds` stops before a config that would start past it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

import torch

# benchmarks/ goes last on the path: its kernels.py must not shadow the `kernels` package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE] + [str(_HERE)]
import provenance  # noqa: E402
import real_model  # noqa: E402

from ctxagent.kernels.attention import layer_index  # noqa: E402
from ctxagent.kernels.chunked_prefill import chunked_prefill  # noqa: E402
from ctxagent.kernels.config import HeadPattern, SparseConfig  # noqa: E402
from ctxagent.kernels.hf_integration import disable_sparse_prefill, enable_sparse_prefill  # noqa: E402
from ctxagent.kernels.search import fast_candidates, head_density, length_candidates, record_prefill, score_candidates, select_config  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "ctxagent" / "evaluation" / "data"
FIRST = ["Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kavya", "Lars", "Mei", "Nadia", "Oscar", "Priya",
         "Quentin", "Rosa", "Samir", "Tove", "Umar", "Vera", "Wendell", "Ximena", "Yusuf", "Zofia", "Anton", "Beatriz", "Cyrus", "Dalia", "Emil", "Freya"]
LAST = ["Abernathy", "Bergstrom", "Castellano", "Dvorak", "Eriksen", "Fontaine", "Grimaldi", "Halvorsen", "Ivanova", "Jablonski", "Kowalczyk", "Lindqvist",
        "Moreau", "Nakamura", "Okonkwo", "Petrov", "Quiroga", "Rasmussen", "Sokolov", "Tanaka", "Ulrich", "Valdez", "Whitfield", "Xu", "Yamamoto",
        "Zielinski", "Ashworth", "Brennan", "Carvalho", "Delacroix", "Esposito", "Fairbanks"]
ANSWERED = re.compile(r"\d{4,}\D")
DEFAULT = {"kind": "vertical_slash", "n_vertical": 1024, "n_diag": 32, "last_q": 64}


def texts() -> tuple[str, str]:
    """Calibration text (Pride and Prejudice, Emma) and the needles' text (QuALITY, Persuasion)."""
    calib = "\n\n".join((DATA / f).read_text() for f in ("pride_and_prejudice.txt", "emma.txt"))
    quality = [json.loads(line)["article"] for line in (DATA / "quality.jsonl").read_text().splitlines() if line.strip()]
    held = "\n\n".join(quality + [(DATA / "persuasion.txt").read_text()])
    return calib, held


def to_length(tokenizer, text: str, n: int) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    while ids.shape[1] < n:  # short text repeats
        ids = torch.cat([ids, ids], 1)
    return ids[:, :n]


def needles(count: int, text: str, seed: int = 26) -> list[dict]:
    """Distinct names, codes and decoys (no code or decoy occurs in the text)."""
    rng = random.Random(seed)
    used: set[str] = set()

    def fresh() -> str:
        while True:
            code = str(rng.randint(1000, 9999))
            if code not in used and code not in text:
                used.add(code)
                return code

    out = []
    for i in range(count):
        name = f"{FIRST[i % 32]} {LAST[(i + i // 32 * 5) % 32]}"
        out.append({"name": name, "code": fresh(), "decoys": [fresh() for _ in range(3)], "depth": (i + 0.5) / count})
    return out


def needle_prompts(tokenizer, text: str, n: int, items: list[dict]) -> list[torch.Tensor]:
    """Chat prompts of at most n tokens: the filler's tokens cut at the needle's depth, the
    needle sentence and the question tokenised on their own and spliced in (re-tokenising
    128K tokens of text per prompt would take longer than prefilling it)."""
    room = n - 160  # chat template, needle sentence and question
    filler = to_length(tokenizer, text, room)[0]
    marker = "@@BODY@@"
    template = tokenizer.apply_chat_template([{"role": "user", "content": marker}], add_generation_prompt=True, tokenize=False)
    before, after = template.split(marker)
    encode = lambda s: tokenizer(s, add_special_tokens=False, return_tensors="pt")["input_ids"][0]  # noqa: E731
    head, tail = encode(before), encode(after)
    prompts = []
    for item in items:
        cut = int(room * item["depth"])
        needle = encode(f" The locker code of {item['name']} is {item['code']}. ")
        question = encode(f"\n\nQuestion: What is the locker code of {item['name']}? Answer with the number only.")
        ids = torch.cat([head, filler[:cut], needle, filler[cut:], question, tail])
        prompts.append(ids[None, -n:])
    return prompts


def squad_items(count: int, seed: int = 26) -> list[dict]:
    """The first `count` (at most 48) SQuAD 2.0 questions in one seeded order: real questions
    over Wikipedia that nobody here wrote (ctxagent.evaluation.squad; imported here because
    it needs pydantic, which the needle task does without)."""
    from ctxagent.evaluation.squad import question_for, squad_questions

    total = len(squad_questions())
    if count > total:
        print(f"squad: {total} questions exist; asking all {total}, not {count}", flush=True)
    return [{"article": a, "question": q} for a, q in (question_for(seed, i) for i in range(min(count, total)))]


def squad_prompts(tokenizer, n: int, items: list[dict], seed: int = 26) -> list[torch.Tensor]:
    """Chat prompts of at most n tokens: the question's whole Wikipedia article among other
    articles (squad.squad_document, seeded per question), then the question. Sets each
    item's "depth", where the gold paragraph sits in the document (0 = start)."""
    from ctxagent.evaluation.squad import squad_document

    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731  one object: squad caches per function
    prompts = []
    for i, item in enumerate(items):
        pick = squad_document(n - 128, count, random.Random(f"{seed}/{i}"), item["article"], item["question"])
        item["depth"] = (pick.offset + item["question"].paragraph[0] - pick.cut) / max(1, len(pick.context))
        body = f"{pick.context}\n\nQuestion: {item['question'].question}\nAnswer with a few words from the text."
        ids = tokenizer.apply_chat_template([{"role": "user", "content": body}], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")["input_ids"]
        assert ids.shape[1] <= n, f"squad prompt {i} has {ids.shape[1]} tokens, over {n}"
        prompts.append(ids)
    return prompts


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def crop_to(cache, length: int) -> None:
    """Drop the cache's tokens past `length` (a negative crop removes that many tokens in
    every transformers 5 release; the meaning of a positive one changed)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


def ask(model, tokenizer, ids: torch.Tensor, item: dict, max_new: int = 24, chunk: int | None = None) -> dict:
    """One prefill (timed; with `chunk`, chunked), a greedy answer, then the four-way
    choice on the same cache (needles; a squad item has no choice: its greedy answer counts
    when it contains a reference answer, ctxagent.evaluation.scoring.contains_match)."""
    squad = "question" in item
    device = str(model.device)
    ids = ids.to(model.device)
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    with torch.inference_mode():
        synchronize(device)
        started = time.perf_counter()
        if chunk:
            cache, logits = chunked_prefill(model, ids, chunk)
        else:
            out = model(ids, use_cache=True, logits_to_keep=1)
            cache, logits = out.past_key_values, out.logits[:, -1]
            del out
        nxt = logits.argmax(-1)
        synchronize(device)
        prefill = time.perf_counter() - started
        n = ids.shape[1]
        tokens: list[int] = []
        for _ in range(max_new):
            if int(nxt) in eos:
                break
            tokens.append(int(nxt))
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            if squad and "\n" in text.strip():
                break  # one line is the answer
            if not squad and ANSWERED.search(text + " "):
                break  # a whole number of 4+ digits is out: the answer is given (digits are single tokens here)
            nxt = model(nxt[:, None], past_key_values=cache, use_cache=True).logits[:, -1].argmax(-1)
        answer = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        if squad:
            from ctxagent.evaluation.scoring import contains_match

            del cache
            right = any(contains_match(answer.split("\n")[0], ref) for ref in item["question"].answers)
            return {"answer": answer, "greedy": right, "chosen": None, "choice": None, "prefill_s": prefill}
        crop_to(cache, n)
        prefix = tokenizer(f"The locker code of {item['name']} is", add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
        first = model(prefix, past_key_values=cache, use_cache=True).logits[:, -1:]
        base = n + prefix.shape[1]
        scores = {}
        for option in [item["code"], *item["decoys"]]:
            tail = tokenizer(" " + option, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
            step = model(tail, past_key_values=cache, use_cache=True).logits
            logp = torch.cat([first, step[:, :-1]], 1).float().log_softmax(-1)
            scores[option] = float(logp.gather(-1, tail[..., None]).sum())
            crop_to(cache, base)
        del cache
    chosen = max(scores, key=scores.get)
    return {"answer": answer, "greedy": item["code"] in answer, "chosen": chosen, "choice": chosen == item["code"], "prefill_s": prefill}


def measured_density(model, ids: torch.Tensor, config: SparseConfig) -> float:
    """Computed share of the causal matrix over every layer and head of one prompt (dense
    heads 1; the dense tail's rows added as an upper bound); 1.0 below min_length."""
    n = ids.shape[1]
    if n < config.min_length:
        return 1.0
    tail = min(config.dense_tail, n)
    tail_share = (n * (n + 1) - (n - tail) * (n - tail + 1)) / (n * (n + 1))
    per_layer: list[float] = []

    def record(layer: int, q: torch.Tensor, k: torch.Tensor) -> None:
        index = layer_index(q, k, config, layer, dense_as_empty=True)
        dens = head_density(index, n).mean(0)  # [H]
        for h in range(q.shape[1]):
            if config.pattern(layer, h).kind == "dense":
                dens[h] = 1.0
        per_layer.append(min(1.0, float(dens.mean()) + tail_share))

    record_prefill(model, ids, record)
    return sum(per_layer) / len(per_layer)


CANDIDATE_SETS = {"all": ("searched", length_candidates), "fast": ("searched_fast", fast_candidates)}


def searched_configs(
    model, tokenizer, calib: str, n: int, budgets: list[float], min_length: int, rows: int, candidate_set: str = "all"
) -> tuple[dict[str, SparseConfig], dict]:
    prefix, make = CANDIDATE_SETS[candidate_set]
    cands = make(n)
    started = time.time()
    recall, density = score_candidates(model, to_length(tokenizer, calib, n), cands, rows=rows, block=64)
    info = {f"calibration_seconds_{candidate_set}": time.time() - started, f"candidates_{candidate_set}": len(cands)}
    out = {}
    for budget in budgets:
        result = select_config(recall, density, cands, density_budget=budget, block=64, min_length=min_length)
        kinds: dict[str, int] = {}
        for heads in result.choices.values():
            for pattern, _, _ in heads:
                kinds[pattern.kind] = kinds.get(pattern.kind, 0) + 1
        distinct = [len(set(result.config.layers[layer])) for layer in result.config.layers]
        info[f"{prefix}_{budget:g}"] = {
            "calibration_recall": sum(r for heads in result.choices.values() for _, r, _ in heads) / sum(len(h) for h in result.choices.values()),
            "calibration_density": sum(d for heads in result.choices.values() for _, _, d in heads) / sum(len(h) for h in result.choices.values()),
            "heads_by_kind": kinds,
            "distinct_patterns_per_layer_max": max(distinct),
            "config": result.config.to_dict(),
        }
        out[f"{prefix}_{budget:g}"] = result.config
    print(f"{n}: calibrated {len(cands)} {candidate_set} candidates in {time.time() - started:.0f} s", flush=True)
    return out, info


def wilson(k: int, n: int) -> str:
    lo, hi = provenance.wilson(k, n)
    return f"{k}/{n} [{lo * n:.0f}-{hi * n:.0f}]"


def write(args, prov: dict, results: list[dict], model_name: str, finished: bool = False) -> None:
    prov = dict(prov) if finished else provenance.finish(dict(prov))
    what = (
        f"{len(results[0]['configs'][0]['answers']) if results and results[0]['configs'] else args.needles} SQuAD 2.0 questions per config (real "
        "questions nobody here wrote, each over its whole Wikipedia article among other articles (about 30 at 128K), ctxagent.evaluation.squad); searched "
        "configs calibrated on other text (Pride and Prejudice, Emma). Greedy = the answer's first line contains a reference answer as "
        "whole words (scoring.contains_match); no choice test. "
        if args.task == "squad"
        else f"{args.needles} questions per config ('What is the locker code of <name>?', one needle per prompt, spread over the depth of the "
        "QuALITY articles and Persuasion); searched configs calibrated on other text (Pride and Prejudice, Emma). Greedy = the answer "
        "contains the code; choice = the planted code is likelier than three absent codes. "
    )
    lines = [
        f"# {'SQuAD questions' if args.task == 'squad' else 'Needles'} and prefill time on {model_name}: dense against searched and default sparse configs",
        "",
        what + "[a-b] = 95% Wilson interval, in questions. "
        "Prefill = median seconds of one synchronised forward over the prompt, sparse index included. Density = computed share of the "
        "causal matrix on the first prompt (dense heads 1, the 256-row tail added as an upper bound).",
        "",
        "Of dense's = how many of the questions dense answers (greedy) this config answers too.",
        "",
        "| tokens | RoPE | config | density | greedy | of dense's | choice | prefill s (median) | x dense | same greedy / choice as unchunked |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        dense = next((c for c in r["configs"] if c["config"] == "dense"), None)
        for c in r["configs"]:
            k = len(c["answers"])
            speed = f"{dense['prefill_median_s'] / c['prefill_median_s']:.2f}" if dense else "-"
            lines.append(
                f"| {r['tokens']} | {r['rope']} | {c['config']} | {c['density']:.3f} | {wilson(c['greedy_correct'], k)} | {also_right(c, dense)} | "
                f"{'-' if c['choice_correct'] is None else wilson(c['choice_correct'], k)} | "
                f"{c['prefill_median_s']:.3f} | {speed} | "
                + (f"{c['same_greedy_as_unchunked']}/{k} / {'-' if c['choice_correct'] is None else str(c['same_choice_as_unchunked']) + '/' + str(k)} |"
                   if "same_greedy_as_unchunked" in c else "- |")
            )
    for r in results:
        for key, s in r.get("search", {}).items():
            if key.startswith("searched_"):
                lines.append(f"\n{r['tokens']} tokens, {key}: calibration recall {s['calibration_recall']:.3f} at density {s['calibration_density']:.3f}; "
                             f"heads {s['heads_by_kind']}; up to {s['distinct_patterns_per_layer_max']} distinct patterns in a layer")
    lines += ["", provenance.markdown_line(prov), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text("\n".join(lines))
    (args.out / f"{args.name}.json").write_text(json.dumps({"provenance": prov, "model": model_name, "task": args.task, "needles": args.needles, "results": results}, indent=1))
    print("\n".join(lines), flush=True)


def right(record: dict) -> bool:
    """Whether a results record's greedy answer is right (squad records say; a needle's holds its code)."""
    return record["right"] if "right" in record else record["code"] in record["answer"]


def also_right(config: dict, dense: dict | None) -> str:
    """'k of n': of the n questions dense answers, how many `config` answers too."""
    if dense is None or len(dense["answers"]) != len(config["answers"]):
        return "-"
    pairs = [(right(d), right(c)) for d, c in zip(dense["answers"], config["answers"])]
    return f"{sum(d and c for d, c in pairs)} of {sum(d for d, _ in pairs)}"


def answer_record(item: dict, answer: dict) -> dict:
    """What the results JSON keeps of one question and its answer."""
    if "question" in item:
        q = item["question"]
        return {"id": q.id, "question": q.question, "references": list(q.answers), "depth": item["depth"], "answer": answer["answer"], "right": answer["greedy"]}
    return {"name": item["name"], "code": item["code"], "depth": item["depth"], "answer": answer["answer"], "chosen": answer["chosen"]}


def rewrite(json_path: Path) -> None:
    """Write the table of a results JSON again (the GPU run's provenance kept, not restamped)."""
    data = json.loads(json_path.read_text())
    prov = dict(data["provenance"])
    args = argparse.Namespace(task=data.get("task", "needles"), needles=data["needles"], out=json_path.parent, name=json_path.stem)
    write(args, prov, data["results"], data["model"], finished=True)


def run_length(args, folder: Path, n: int, calib: str, held: str, prov: dict, results: list[dict], started: float) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer, model, rope = real_model.load(folder, n, dtype, device, args.native)
    min_length = min(8192, n // 2)
    if args.task == "squad":
        items = squad_items(args.needles)
        prompts = squad_prompts(tokenizer, n, items)
    else:
        items = needles(args.needles, held)
        prompts = needle_prompts(tokenizer, held, n, items)
    row: dict = {"tokens": n, "rope": rope, "prompt_tokens": [int(p.shape[1]) for p in prompts[:1]], "configs": []}
    results.append(row)
    configs: dict[str, SparseConfig | None] = {}
    for name in args.configs:
        if name == "dense":
            configs["dense"] = None
        elif name == "default":
            # in blocks of 128 the default keeps its token band: 16 diagonals of 128 where it has 32 of 64
            pattern = {**DEFAULT, "n_diag": DEFAULT["n_diag"] * 64 // args.default_block}
            configs["default"] = SparseConfig(default=HeadPattern.from_dict(pattern), min_length=min_length, block=args.default_block)
    if "searched" in args.configs:
        searched, row["search"] = {}, {}
        for candidate_set in args.candidates:
            found, info = searched_configs(model, tokenizer, calib, n, args.budgets, min_length, args.rows, candidate_set)
            searched.update(found)
            row["search"].update(info)
        ordered: dict[str, SparseConfig | None] = {}
        for name in args.configs:  # searched configs where "searched" stands in --configs
            ordered.update(searched if name == "searched" else {name: configs[name]})
        configs = ordered
    if args.default_block != 64 and "default" in configs:  # name it by its block in the tables
        configs = {(f"default_b{args.default_block}" if k == "default" else k): v for k, v in configs.items()}
    runs = [(name, config, None) for name, config in configs.items()]
    runs += [(f"{name}, chunks of {args.prefill_chunk}", configs[name], args.prefill_chunk) for name in args.chunked if name in configs]
    for name, config, chunk in runs:
        if args.max_seconds and time.time() - started > args.max_seconds:
            print(f"skipping {name} at {n}: past --max-seconds", flush=True)
            row.setdefault("skipped", []).append(name)
            continue
        density = 1.0 if config is None else measured_density(model, prompts[0], config)
        settings = None
        if config is not None:
            settings = enable_sparse_prefill(model, config)
        t0 = time.time()
        max_new = 32 if args.task == "squad" else 24  # a phrase; a code of 4+ digits
        answers = [ask(model, tokenizer, p, item, max_new=max_new, chunk=chunk) for p, item in zip(prompts, items)]
        if settings is not None:
            disable_sparse_prefill(model, "sdpa")
        result = {
            "config": name,
            "density": density,
            "greedy_correct": sum(a["greedy"] for a in answers),
            "choice_correct": None if args.task == "squad" else sum(a["choice"] for a in answers),
            "prefill_median_s": statistics.median(a["prefill_s"] for a in answers),
            "prefill_s": [round(a["prefill_s"], 4) for a in answers],
            "answers": [answer_record(i, a) for i, a in zip(items, answers)],
            "sparse_calls": settings.calls["sparse"] if settings else 0,
            "seconds": time.time() - t0,
        }
        if chunk:  # the same answers as the unchunked run of this config?
            whole = next(c for c in row["configs"] if c["config"] == name.split(",")[0])
            result["same_greedy_as_unchunked"] = sum(a["answer"] == w["answer"] for a, w in zip(result["answers"], whole["answers"]))
            result["same_choice_as_unchunked"] = sum(a.get("chosen") == w.get("chosen") for a, w in zip(result["answers"], whole["answers"]))
        if config is not None:
            result["sparse_config"] = config.to_dict()
            assert result["sparse_calls"] > 0, f"{name} never ran sparse"
        row["configs"].append(result)
        print(f"{n} {name}: greedy {result['greedy_correct']}/{len(items)} choice {result['choice_correct']} "
              f"prefill {result['prefill_median_s']:.3f} s density {density:.3f} ({result['seconds']:.0f} s)", flush=True)
        write(args, prov, results, args.model_name)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="a .gguf file or a transformers folder")
    ap.add_argument("--convert-dir", type=Path, default=None, help="where a GGUF is converted to (default: beside it, <stem>-hf)")
    ap.add_argument("--tokens", type=int, nargs="+", default=[32768])
    ap.add_argument("--native", type=int, default=None, help="the model's native window (default: its config's)")
    ap.add_argument("--needles", type=int, default=64, help="questions per config (squad: at most 48)")
    ap.add_argument("--task", choices=["needles", "squad"], default="needles",
                    help="needles: planted locker codes; squad: the bundled SQuAD 2.0 questions over Wikipedia articles (needs pydantic)")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.10, 0.05])
    ap.add_argument("--configs", nargs="+", default=["dense", "searched", "default"], choices=["dense", "searched", "default"])
    ap.add_argument("--candidates", nargs="+", default=["all"], choices=sorted(CANDIDATE_SETS),
                    help="candidate sets to search: all = length_candidates (searched_B), fast = fast_candidates, the default's cheap index (searched_fast_B)")
    ap.add_argument("--prefill-chunk", type=int, default=8192, help="chunk size of the --chunked runs")
    ap.add_argument("--chunked", nargs="*", default=[], help="configs (dense, default, searched_0.1, ...) to run once more with chunked prefill, compared answer by answer")
    ap.add_argument("--rows", type=int, default=64, help="sampled rows per layer for the calibration recall")
    ap.add_argument("--default-block", type=int, choices=[64, 128], default=64, help="block size of the `default` config (128: 16 diagonals of 128)")
    ap.add_argument("--max-seconds", type=float, default=None, help="start no config after this many seconds (results so far are kept)")
    ap.add_argument("--quick", action="store_true", help="1024 tokens, 4 needles: a smoke test")
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--allow-dirty", action="store_true")
    ap.add_argument("--rewrite", type=Path, default=None, help="only rewrite the table of this results JSON (its <name>.md beside it)")
    args = ap.parse_args()
    if args.rewrite:
        return rewrite(args.rewrite)
    if args.quick:
        args.tokens, args.needles, args.rows = [1024], 4, 16
        args.prefill_chunk, args.chunked = 384, args.chunked or ["default"]
    prov = provenance.stamp(args.allow_dirty)
    folder = real_model.converted(args.model, args.convert_dir)
    args.model_name = args.model.stem if args.model.suffix == ".gguf" else args.model.name
    args.name = args.name or f"needles_real{'_quick' if args.quick else ''}"
    calib, held = texts()
    results: list[dict] = []
    started = time.time()
    for n in args.tokens:
        run_length(args, folder, n, calib, held, prov, results, started)


if __name__ == "__main__":
    main()
