"""Engines side by side: the same batch of recipe calls on `hf`, `vllm`, and `openai` over HTTP.

The workload is what a map-style recipe step sends: one question asked of every chunk of a
document in one `generate` call (throughput), plus single-prompt calls as an interactive
user makes them (latency). Every engine runs the same embedded SmolLM2-135M-Instruct.

    python benchmarks/engines.py                         # hf, openai over ctxagent's server
    /work/vllm-venv/bin/python benchmarks/engines.py     # adds vllm and openai over `vllm serve`

Engines that cannot run in this interpreter are listed with the exact reason. Results go to
benchmarks/results/engines.{json,md,png}. Timings on a shared machine are noisy: the load
average at start and end is recorded with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from provenance import finish, markdown_line, stamp, was_shared  # noqa: E402  (benchmarks/ is on sys.path)
from plotting import pyplot  # noqa: E402  (benchmarks/ is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
RESULTS = ROOT / "benchmarks" / "results"
QUESTION = "What was the third-quarter revenue?"


def workload(batch: int) -> list[Any]:
    """`batch` map-step prompts: the question over overlapping three-paragraph chunks of the bundled
    report, cycled to fill the batch (the prompt sizes of a real map step, ~150-250 tokens)."""
    from ctxagent.recipes.prompts import answer_prompt

    text = (ROOT / "examples" / "data" / "report.md").read_text()
    paragraphs = [p for p in text.split("\n\n") if len(p) > 80]
    return [answer_prompt("\n\n".join(paragraphs[(i + k) % len(paragraphs)] for k in range(3)), QUESTION) for i in range(batch)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(cmd: list[str], base_url: str, timeout: float, log: Path) -> Iterator[float]:
    """Start a server, wait until /v1/models answers; yields its start-up seconds; always stops it."""
    import httpx

    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}; last output:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{' '.join(cmd[:3])} did not answer within {timeout:.0f} s")
            time.sleep(0.5)
        yield time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(engine: Any, prompts: list[Any], max_new: int, singles: int) -> dict[str, Any]:
    from ctxagent.engines import SamplingParams

    params = SamplingParams(max_new_tokens=max_new)
    engine.generate(prompts[:1], SamplingParams(max_new_tokens=2))  # warm-up
    t0 = time.perf_counter()
    outs = engine.generate(prompts, params)
    batch_s = time.perf_counter() - t0
    latencies = []
    for p in prompts[:singles]:
        t0 = time.perf_counter()
        engine.generate([p], params)
        latencies.append(time.perf_counter() - t0)
    new_tokens = sum(o.completion_tokens for o in outs)
    return {
        "batch_seconds": round(batch_s, 3),
        "prompts_per_s": round(len(prompts) / batch_s, 3),
        "new_tokens_per_s": round(new_tokens / batch_s, 2),
        "prompt_tokens": sum(o.prompt_tokens for o in outs),
        "new_tokens": new_tokens,
        "latency_p50_s": round(statistics.median(latencies), 3),
        "answers_with_26_4": sum("26.4" in o.text for o in outs),
    }


def run_engine(name: str, build: Callable[[], tuple[Any, Callable[[], None]]], prompts: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    print(f"[{name}] starting", flush=True)
    t0 = time.perf_counter()
    try:
        engine, stop = build()
    except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
        return {"engine": name, "status": f"could not start: {type(exc).__name__}: {exc}"}
    load_s = time.perf_counter() - t0
    try:
        result = measure(engine, prompts, args.max_new_tokens, args.singles)
    except Exception as exc:  # noqa: BLE001
        result = {"status": f"failed: {type(exc).__name__}: {exc}"}
    finally:
        stop()
    result = {"engine": name, "status": result.pop("status", "ok"), "load_seconds": round(load_s, 2), **result}
    print(f"[{name}] {result}", flush=True)
    return result


def vllm_unavailable_reason() -> str | None:
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any failure to import is the reason
        return (
            f"vLLM is not importable in {sys.executable} ({type(exc).__name__}: {exc}). It runs here from vllm-cpu "
            "0.32.0 in its own environment (docs/engines.md): rerun this script with that environment's python"
        )
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="prompts in the batched call")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--singles", type=int, default=3, help="single-prompt calls for latency")
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--engines", default="hf,openai-ctxagent,vllm,openai-vllm")
    parser.add_argument("--server-timeout", type=float, default=600, help="seconds a server may take to start")
    parser.add_argument("--request-timeout", type=float, default=1800, help="seconds one HTTP request may take (a whole batch on a busy CPU)")
    parser.add_argument("--dtype", default="float32", help="weights' precision for every engine, so the comparison is like for like (vLLM's own default would be bf16)")
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes (results say '<commit>-dirty')")
    args = parser.parse_args()
    provenance = stamp(args.allow_dirty)
    RESULTS.mkdir(parents=True, exist_ok=True)
    from ctxagent.engines import get_engine

    prompts = workload(args.batch)
    wanted = args.engines.split(",")
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    logs = RESULTS / "logs"
    logs.mkdir(exist_ok=True)

    def inproc(name: str, **options: Any) -> Callable[[], tuple[Any, Callable[[], None]]]:
        def build() -> tuple[Any, Callable[[], None]]:
            engine = get_engine(name, context_window=args.window, dtype=args.dtype, **options)
            return engine, getattr(engine, "close", lambda: None)

        return build

    def over_http(cmd: list[str], port: int, log: Path) -> Callable[[], tuple[Any, Callable[[], None]]]:
        def build() -> tuple[Any, Callable[[], None]]:
            ctx = server_process(cmd, f"http://127.0.0.1:{port}/v1", args.server_timeout, log)
            ctx.__enter__()
            try:
                engine = get_engine("openai", base_url=f"http://127.0.0.1:{port}/v1", max_concurrency=args.batch, timeout=args.request_timeout)
            except Exception:
                ctx.__exit__(None, None, None)
                raise

            def stop() -> None:
                engine.close()
                ctx.__exit__(None, None, None)

            return engine, stop

        return build

    reason = vllm_unavailable_reason()
    for name in wanted:
        if name == "hf":
            results.append(run_engine("hf", inproc("hf"), prompts, args))
        elif name == "openai-ctxagent":
            port = free_port()
            cmd = [sys.executable, "-m", "ctxagent.cli", "serve", "--engine", "hf", "--port", str(port),
                   "--context-window", str(args.window)]  # fmt: skip
            results.append(run_engine("openai → ctxagent server (hf)", over_http(cmd, port, logs / "ctxagent-server.log"), prompts, args))
        elif name == "vllm":
            if reason:
                results.append({"engine": "vllm", "status": f"not run: {reason}"})
            else:
                results.append(run_engine("vllm", inproc("vllm"), prompts, args))
        elif name == "openai-vllm":
            if reason:
                results.append({"engine": "openai → vllm serve", "status": f"not run: {reason}"})
                continue
            from ctxagent.engines.vllm import embedded_model_dir

            port = free_port()
            # vllm-cpu's `vllm` command fails at start (docs/engines.md); its server module is the same server.
            cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(embedded_model_dir()), "--host", "127.0.0.1",
                   "--port", str(port), "--max-model-len", str(args.window), "--enforce-eager", "--dtype", args.dtype]  # fmt: skip
            results.append(run_engine("openai → vllm serve", over_http(cmd, port, logs / "vllm-serve.log"), prompts, args))

    base = next((r for r in results if r["engine"] == "hf" and r["status"] == "ok"), None)
    for r in results:
        if base and r.get("status") == "ok":
            r["throughput_vs_hf"] = round(r["prompts_per_s"] / base["prompts_per_s"], 2)
            r["latency_vs_hf"] = round(r["latency_p50_s"] / base["latency_p50_s"], 2)
    machine = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_before],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "interpreter": sys.executable,
    }
    with contextlib.suppress(Exception):
        import torch

        machine["torch"] = torch.__version__
    with contextlib.suppress(Exception):
        import vllm

        machine["vllm"] = vllm.__version__
    config = {"batch": args.batch, "max_new_tokens": args.max_new_tokens, "singles": args.singles, "window": args.window, "dtype": args.dtype}
    provenance = finish(provenance)
    (RESULTS / "engines.json").write_text(json.dumps({"provenance": provenance, "machine": machine, "config": config, "results": results}, indent=1))
    write_table(results, machine, config, provenance)
    write_plot(results)


def load_note(machine: dict[str, Any]) -> str:
    """Whether other work shared the CPU (provenance.was_shared, on the 1-minute averages), in this table's words."""
    one_minute = [machine["load_average_start"][0], machine["load_average_end"][0]]
    return "shared with other work: timings noisy" if was_shared(one_minute, machine["cpus"]) else "otherwise idle"


def write_table(results: list[dict[str, Any]], machine: dict[str, Any], config: dict[str, Any], provenance: dict[str, Any]) -> None:
    cols = ["engine", "load_seconds", "batch_seconds", "prompts_per_s", "new_tokens_per_s", "latency_p50_s", "throughput_vs_hf", "latency_vs_hf", "answers_with_26_4"]
    lines = [
        markdown_line(provenance),
        "",
        f"Batch of {config['batch']} map-step prompts, {config['max_new_tokens']} new tokens each, every engine's weights in {config.get('dtype', 'its default precision')}; "
        f"latency = median of {config['singles']} single-prompt calls. Machine: {machine['platform']}, {machine['cpus']} CPUs, "
        f"load average {machine['load_average_start']} -> {machine['load_average_end']} ({load_note(machine)}).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    notes = []
    for r in results:
        if r.get("status") == "ok":
            lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
        else:
            notes.append(f"- {r['engine']}: {r['status']}")
    text = "\n".join(lines + ([""] + notes if notes else [])) + "\n"
    (RESULTS / "engines.md").write_text(text)
    print(text)


def write_plot(results: list[dict[str, Any]]) -> None:
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return
    plt = pyplot()
    if plt is None:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    names = [r["engine"] for r in ok]
    a.barh(names, [r["prompts_per_s"] for r in ok], color="tab:blue")
    a.set_xlabel("prompts / s (batched call)")
    b.barh(names, [r["latency_p50_s"] for r in ok], color="tab:orange")
    b.set_xlabel("latency of one prompt, median (s)")
    b.set_yticks([])
    fig.suptitle("ctxagent engines, SmolLM2-135M-Instruct, CPU (shared machine)")
    fig.tight_layout()
    fig.savefig(RESULTS / "engines.png", dpi=120)


if __name__ == "__main__":
    main()
