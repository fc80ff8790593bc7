"""A soak test of `ctxagent serve`: many clients for many minutes, faults mixed in, nothing lost,
memory flat.

Starts `ctxagent serve` (embedded model, window capped) as a subprocess on 127.0.0.1 and runs
`--clients` client threads until `--minutes` have passed (each thread stops by itself at the
deadline). Each request asks about a long document (real text, several windows long, one fact
planted per document). The mix, per request: 10% streams closed after their first progress
event (the server must cancel them), 2% malformed bodies (400), 2% wrong keys (401), 1% bodies
over --max-body-bytes (413); the rest are well-formed, half streamed. Every request is checked:
a well-formed one must be answered (200 with an answer, or a stream ending in [DONE]) or get an
explicit error in OpenAI's shape; a fault must get its status. Anything else (a dropped
connection, a timeout, a stream without [DONE]) counts as lost.

Reports throughput, p50/p95 latency of answered requests, errors by kind, the server's
cancellation count (from /metrics) against the disconnects sent, and the server's resident
memory at start, after warm-up and at the end; the run holds if nothing is lost and memory grew
by at most 10% after warm-up. Warm-up lasts --warmup-minutes and until every client has had its
first request finished (at most half the run): with 32 clients a request takes over a minute, so
a fixed minute ended before the server had seen one whole round of the load. The end reading is
the last one taken while clients still run (the server trims freed memory once it falls idle,
which would flatter a reading taken after they stop); both are in the results.

    python benchmarks/serve_soak.py                          # 10 minutes, 32 clients (run on an idle machine)
    python benchmarks/serve_soak.py --minutes 1 --clients 4 --warmup-minutes 0.25 --allow-dirty   # smoke test

Writes benchmarks/results/serve_soak.{md,json} (another stem with --out).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Off sys.path: benchmarks/kernels.py would shadow the `kernels` package transformers imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
KEY = "soak-key-not-secret"
HOST = "127.0.0.1"  # loopback only
MAX_BODY = 400_000
# Share of each fault in the request mix (the rest are well-formed).
MIX = (("disconnect", 0.10), ("malformed", 0.02), ("wrong_key", 0.02), ("oversize", 0.01))
EXPECTED = {"malformed": 400, "wrong_key": 401, "oversize": 413}


@dataclass
class Outcome:
    kind: str  # "ok" | "stream" | "disconnect" | a fault of MIX
    started: float
    seconds: float = 0.0
    status: int | None = None
    result: str = "lost"  # "answered" | "error" (explicit, OpenAI shape) | "refused" (the fault's status) | "closed" | "lost"
    detail: str = ""


def documents(window: int, count: int, times: float) -> list[tuple[str, str, str]]:
    """(text, question, answer) per document: Austen text about `times` windows long, a code planted."""
    from ctxagent.engines import get_engine
    from tests.texts import text_with_fact

    tokens = get_engine("hf").count_tokens
    books = ("persuasion", "emma")
    out = []
    for n in range(count):
        code = str(1000 + (n * 7919) % 9000)
        fact = f"The access code of archive room {n} is {code}."
        text = text_with_fact(fact, tokens, times * window, depth=0.15 + 0.7 * n / max(1, count - 1), book=books[n % 2])
        out.append((text, f"What is the access code of archive room {n}?", code))
    return out


def start_server(args: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "ctxagent.cli", "serve", "--host", HOST, "--port", "0", "--api-key", KEY,
               "--context-window", str(args.context_window), "--max-body-bytes", str(MAX_BODY), "--max-new-tokens", "32",
               "--request-timeout", str(args.request_timeout), "--max-concurrent", str(args.clients)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(log_path, "w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()
    if " at http://" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}; see {log_path}")
    return process, line.rsplit(" at ", 1)[1].strip()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def pick(rng: random.Random) -> str:
    x, at = rng.random(), 0.0
    for kind, share in MIX:
        at += share
        if x < at:
            return kind
    return "stream" if rng.random() < 0.5 else "ok"


def one_request(client: httpx.Client, base: str, kind: str, doc: tuple[str, str, str], recipe: str, options: dict) -> Outcome:
    text, question, _ = doc
    out = Outcome(kind, time.monotonic())
    headers = {"Authorization": f"Bearer {KEY if kind != 'wrong_key' else KEY + '-wrong'}"}
    body: dict = {"model": f"ctxagent/{recipe}", "messages": [{"role": "system", "content": text}, {"role": "user", "content": question}], "recipe_options": options}
    url = base + "/chat/completions"
    try:
        if kind == "malformed":
            r = client.post(url, content=b'{"model": "ctxagent/auto", "messages": [', headers={**headers, "content-type": "application/json"})
            return _refused(out, r)
        if kind == "oversize":
            body["messages"][0]["content"] = text * (MAX_BODY // max(1, len(text)) + 2)
            r = client.post(url, json=body, headers=headers)
            return _refused(out, r)
        if kind == "wrong_key":
            return _refused(out, client.post(url, json=body, headers=headers))
        if kind == "ok":
            r = client.post(url, json=body, headers=headers)
            out.status = r.status_code
            payload = r.json()
            if r.status_code == 200 and payload["choices"][0]["message"]["content"] is not None:
                out.result = "answered"
            elif "error" in payload and {"message", "type"} <= set(payload["error"]):
                out.result, out.detail = "error", f"{r.status_code}: {payload['error']['message'][:120]}"
            return _done(out)
        body["stream"] = True
        with client.stream("POST", url, json=body, headers=headers) as r:
            out.status = r.status_code
            if r.status_code != 200:
                payload = json.loads(r.read())
                out.result, out.detail = ("error", f"{r.status_code}: {payload['error']['message'][:120]}") if "error" in payload else ("lost", "")
                return _done(out)
            for line in r.iter_lines():
                if kind == "disconnect" and '"event"' in line:
                    out.result = "closed"  # leaving mid-way: the server must cancel the run
                    return _done(out)
                if line.startswith('data: {"error"'):
                    out.result, out.detail = "error", line[6:126]
                if line == "data: [DONE]":
                    out.result = "answered" if out.result == "lost" else out.result
                    return _done(out)
        if kind == "disconnect":
            out.detail = "the stream ended before a progress event"
            out.result = "answered" if out.result == "lost" else out.result
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        out.result, out.detail = "lost", f"{type(exc).__name__}: {str(exc)[:120]}"
    return _done(out)


def _refused(out: Outcome, r: httpx.Response) -> Outcome:
    out.status = r.status_code
    try:
        shaped = {"message", "type"} <= set(r.json()["error"])
    except (ValueError, KeyError, TypeError):
        shaped = False
    out.result = "refused" if r.status_code == EXPECTED[out.kind] and shaped else "lost"
    out.detail = "" if out.result == "refused" else f"expected {EXPECTED[out.kind]} in OpenAI's shape, got {r.status_code}"
    return _done(out)


def _done(out: Outcome) -> Outcome:
    out.seconds = round(time.monotonic() - out.started, 3)
    return out


def client_loop(
    n: int, base: str, deadline: float, docs: list, args: argparse.Namespace, outcomes: list[Outcome], lock: threading.Lock, served: set[int]
) -> None:
    rng = random.Random(args.seed * 1000 + n)
    options = {"retriever": "bm25", "k": 2} if args.recipe == "retrieve_then_reason" else {}
    with httpx.Client(timeout=args.request_timeout + 30) as client:
        for _ in range(args.max_requests_per_client):  # bounded; the deadline ends it first
            if time.monotonic() >= deadline:
                return
            out = one_request(client, base, pick(rng), rng.choice(docs), args.recipe, options)
            with lock:
                outcomes.append(out)
                served.add(n)


def cancellations(base: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(base.removesuffix("/v1") + "/metrics", timeout=30).text
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "ctxagent_cancellations" for s in f.samples if s.name.endswith("_total"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=1.0, help="memory is compared from the end of this")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--recipe", default="retrieve_then_reason")
    parser.add_argument("--context-window", type=int, default=2048)
    parser.add_argument("--doc-windows", type=float, default=4.0, help="document length in windows")
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--max-requests-per-client", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="serve_soak", help="results file stem under benchmarks/results (e.g. serve_soak_10min)")
    parser.add_argument("--allow-dirty", action="store_true", help="record results from a tree with uncommitted changes")
    args = parser.parse_args()
    block = provenance.stamp(args.allow_dirty)
    RESULTS.mkdir(parents=True, exist_ok=True)
    docs = documents(args.context_window, args.documents, args.doc_windows)
    server_log = Path(tempfile.mkdtemp(prefix="serve-soak-")) / "server.log"
    print(f"server log: {server_log}", flush=True)
    process, base = start_server(args, server_log)
    outcomes: list[Outcome] = []
    served: set[int] = set()  # clients with a finished request
    lock = threading.Lock()
    try:
        rss = {"start": rss_mib(process.pid)}
        began = time.monotonic()
        deadline = began + 60 * args.minutes
        threads = [threading.Thread(target=client_loop, args=(n, base, deadline, docs, args, outcomes, lock, served), daemon=True) for n in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(60 * min(args.warmup_minutes, args.minutes))
        while len(served) < args.clients and time.monotonic() - began < 30 * args.minutes:
            time.sleep(1.0)
        rss["after_warmup"] = rss_mib(process.pid)
        warmup_seconds = round(time.monotonic() - began)
        peak = rss["after_warmup"]
        series = [(round(time.monotonic() - began), round(rss["after_warmup"], 1))]  # (seconds, MiB): a plateau or a climb
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            now = rss_mib(process.pid)
            peak = max(peak, now)
            rss["end_under_load"] = now
            if time.monotonic() - began >= series[-1][0] + 30:
                series.append((round(time.monotonic() - began), round(now, 1)))
        wall = time.monotonic() - began
        time.sleep(2.0)  # let the last cancellations land
        rss["end"], rss["peak_after_warmup"] = rss_mib(process.pid), peak
        cancelled = cancellations(base)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    kinds = Counter(o.kind for o in outcomes)
    results = Counter((o.kind, o.result) for o in outcomes)
    answered = [o.seconds for o in outcomes if o.result == "answered"]
    lost = [o for o in outcomes if o.result == "lost"]
    closed = results[("disconnect", "closed")]
    growth = (rss.get("end_under_load", rss["end"]) - rss["after_warmup"]) / rss["after_warmup"]
    quantiles = statistics.quantiles(answered, n=20) if len(answered) >= 2 else [float("nan")] * 19
    summary = {
        "requests": len(outcomes),
        "wall_seconds": round(wall, 1),
        "answered": len(answered),
        "answered_per_minute": round(len(answered) / wall * 60, 2),
        "latency_p50_s": round(statistics.median(answered), 2) if answered else None,
        "latency_p95_s": round(quantiles[18], 2) if answered else None,
        "by_kind": dict(kinds),
        "outcomes": {f"{k}:{r}": v for (k, r), v in sorted(results.items())},
        "errors_by_status": dict(Counter(str(o.status) for o in outcomes if o.result == "error")),
        "disconnects_sent": closed,
        "server_cancellations": cancelled,
        "lost": len(lost),
        "lost_examples": [asdict(o) for o in lost[:10]],
        "rss_mib": {k: round(v, 1) for k, v in rss.items()},
        "warmup_seconds": warmup_seconds,
        "rss_growth_after_warmup": round(growth, 4),
        "rss_mib_every_30s": series,
    }
    summary["holds"] = bool(not lost and growth <= 0.10 and cancelled >= 0.9 * closed)
    provenance.finish(block)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"provenance": block, "args": vars(args), "summary": summary}, indent=1))
    lines = [
        "# `ctxagent serve` soak", "", provenance.markdown_line(block), "",
        f"{args.clients} clients, {args.minutes:g} min, recipe {args.recipe}, documents {args.doc_windows:g}x a {args.context_window}-token window, embedded model.", "",
        "| measure | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in summary.items() if k != "lost_examples"],
    ]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not summary["holds"]:
        raise SystemExit("the soak did not hold: " + ("requests were lost; " if lost else "") + (f"memory grew {growth:.1%} after warm-up; " if growth > 0.10 else "") + (f"{cancelled:g} cancellations for {closed} disconnects" if cancelled < 0.9 * closed else ""))


if __name__ == "__main__":
    main()
