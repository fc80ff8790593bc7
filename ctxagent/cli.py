"""`ctxagent` on the command line: composes with pipes and JSON.

    ctxagent ask report.pdf "What was the Q3 revenue?"
    cat notes.txt | ctxagent ask - "Who signed?" --json
    ctxagent ask report.pdf "What was the Q3 revenue?" --stream
    ctxagent serve --port 8000 [--api-key KEY]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, Sequence

from ctxagent import envs
from ctxagent.defaults import DEFAULT_ENGINE, MAX_NEW_TOKENS
from ctxagent.errors import CtxAgentError, EngineNotInstalled

Command = Callable[[argparse.Namespace], int]


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default=DEFAULT_ENGINE, help=f"engine backend (hf, vllm, openai, or a registered name); default {DEFAULT_ENGINE}")
    parser.add_argument("--model", help="model for the engine: hub id, local folder or .gguf file (default: embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--base-url", help="server URL for the openai engine, e.g. http://127.0.0.1:8000/v1")


def engine_options(args: argparse.Namespace) -> dict:
    options = {}
    if args.model:
        options["model"] = args.model
    if getattr(args, "base_url", None):
        options["base_url"] = args.base_url
    return options


def _add_budget_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-tokens", type=int, help="budget: prompt + completion tokens over all engine calls")
    parser.add_argument("--max-calls", type=int, help="budget: engine calls")
    parser.add_argument("--max-seconds", type=float, help="budget: wall-clock seconds, 0 for no limit (ask: default 60; batch and eval: no limit)")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help=f"length of the answer (default {MAX_NEW_TOKENS})")


def budget_from(args: argparse.Namespace, default_seconds: float | None = None):
    """The Budget the flags ask for; `--max-seconds 0` means no time limit, unset means `default_seconds`."""
    from ctxagent.types import Budget

    seconds = default_seconds if args.max_seconds is None else (args.max_seconds or None)
    return Budget(max_tokens=args.max_tokens, max_calls=args.max_calls, max_seconds=seconds, max_new_tokens=args.max_new_tokens)


def _is_corpus(path: str) -> bool:
    from pathlib import Path

    return path != "-" and (Path(path).is_dir() or Path(path).suffix.lower() in (".jsonl", ".ndjson"))


def _corpus_index(args: argparse.Namespace, **update_options):
    """The corpus index of ARGS' corpus, brought up to date; `.report` says what changed."""
    from ctxagent.corpus.index import open_index

    return open_index(args.file, encoding=args.encoding, name=args.name, retriever=args.retriever, **update_options)


def cmd_ask(args: argparse.Namespace) -> int:
    from ctxagent.agent import ContextAgent
    from ctxagent.loaders import document_from_text, load_document
    from ctxagent.types import INTERACTIVE_MAX_SECONDS

    if args.max_seconds is None:
        print(f"ctxagent: answering within {INTERACTIVE_MAX_SECONDS:g} s, the default time budget of `ask` (--max-seconds 0 lifts it)", file=sys.stderr)
    agent = ContextAgent(engine=args.engine, **engine_options(args))
    budget = budget_from(args, INTERACTIVE_MAX_SECONDS)
    if _is_corpus(args.file):  # a folder or JSONL: one question across the corpus, index updated first
        index = _corpus_index(args, progress=not args.json)
        report = index.report
        if report is not None and (report.added or report.changed or report.removed):
            print(f"  index: {len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed", file=sys.stderr)
        answer = agent.ask(index, args.question, recipe=args.recipe, budget=budget, k=args.k, max_documents=args.max_documents)
        if args.stream and not args.json:
            print(answer.text)
    else:
        if args.file == "-":
            document = document_from_text(sys.stdin.read(), doc_id="stdin")
        else:
            document = load_document(args.file, encoding=args.encoding)
        if args.stream and not args.json:
            answer = _ask_streamed(agent, document, args)
        else:
            answer = agent.ask(document, args.question, recipe=args.recipe, budget=budget)
    if args.json:
        print(answer.model_dump_json())
        return 0
    if not args.stream:
        print(answer.text)
    for i, c in enumerate(answer.citations, 1):
        page = f" (page {c.page})" if c.page else ""
        print(f"  [{i}] {c.doc_id}:{c.start}-{c.end}{page} \"{c.quote}\"")
    for note in answer.notes:
        print(f"  note: {note}", file=sys.stderr)
    u = answer.usage
    flag = " (partial: budget ran out)" if answer.partial else ""
    basis = f", {answer.basis}" if answer.basis else ""  # how the answer stands to its citations (Answer.basis)
    print(f"  recipe {answer.recipe}{basis}{flag}; {u.engine_calls} engine calls, {u.prompt_tokens}+{u.completion_tokens} tokens, {u.seconds:.1f} s", file=sys.stderr)
    return 0


def _ask_streamed(agent, document, args: argparse.Namespace):
    """Plan and steps on stderr, the draft answer as the model writes it, then the checked answer.

    On a terminal the draft is written to stdout and stands when the check keeps it; when the
    check replaced it, the checked answer follows, said so. In a pipe, stdout gets only the
    checked answer and the draft goes to stderr.
    """
    from ctxagent.types import INTERACTIVE_MAX_SECONDS

    tty = sys.stdout.isatty()
    draft_out = sys.stdout if tty else sys.stderr
    draft: list[str] = []
    answer = None
    for event in agent.stream(document, args.question, recipe=args.recipe, budget=budget_from(args, INTERACTIVE_MAX_SECONDS)):
        if event.type == "plan":
            print(f"  plan: {event.recipe} ({event.why})", file=sys.stderr)
        elif event.type == "step":
            if draft:  # the answer step ended: finish the draft's line first
                print(file=draft_out)
                draft_out.flush()
            print(f"  step: {event.name}", file=sys.stderr)
        elif event.type == "token":
            draft.append(event.text)
            print(event.text, end="", flush=True, file=draft_out)
        else:
            answer = event.answer
    assert answer is not None
    from ctxagent.recipes.reading import parse_reply

    # The answer step's draft may end with its "Facts used: ..." line, which the checked answer drops.
    kept = parse_reply("".join(draft), shown=len(answer.citations) or 1).text == answer.text
    if draft and not kept:
        print("  (the draft was not supported by its citations; the checked answer:)", file=sys.stderr)
    if not (tty and kept):
        print(answer.text)
    return answer


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from ctxagent.server import ServerSettings, serve
    except ImportError as exc:
        raise EngineNotInstalled(f"`ctxagent serve` needs FastAPI and uvicorn ({exc.name} is missing): pip install \"ctxagent[serve]\"") from None
    from ctxagent.engines import get_engine

    options = engine_options(args)
    if args.context_window:
        options["context_window"] = args.context_window
    engine = get_engine(args.engine, **options)
    settings = ServerSettings(
        api_keys=list(args.api_key or []) or [k for k in [envs.get("CTXAGENT_API_KEY")] if k],
        keys_file=args.api_keys_file,
        max_per_key=args.max_per_key,
        model_name=args.served_model_name,
        max_body_bytes=args.max_body_bytes,
        request_timeout=args.request_timeout,
        max_concurrent=args.max_concurrent,
        batch_wait=args.batch_wait,
        trim_seconds=args.trim_seconds,
        budget=budget_from(args),
    )
    serve(engine, settings, host=args.host, port=args.port)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    args.file = args.corpus
    ray_options = {"address": args.ray_address} if args.ray_address else {}
    report = _corpus_index(args, executor=args.executor, progress=not args.no_progress, ray_options=ray_options).report
    assert report is not None
    if args.json:
        print(report.model_dump_json())
        return 0
    print(
        f"ctxagent index: {report.documents} documents, {report.chunks} chunks in {report.path}; {len(report.added)} added, "
        f"{len(report.changed)} changed, {len(report.removed)} removed, {report.unchanged} unchanged, {report.embedded_chunks} chunks embedded "
        f"({report.seconds:.1f} s){'; rebuilt (the saved index could not be used)' if report.rebuilt else ''}"
    )
    for doc_id, error in report.failed.items():
        print(f"  not indexed: {doc_id}: {error}", file=sys.stderr)
    return 0


def _add_index_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="index name under $CTXAGENT_CACHE/corpora (default: derived from the corpus path)")
    parser.add_argument("--retriever", default="hybrid", choices=["hybrid", "bm25", "dense"], help="corpus index kind (default hybrid)")


def cmd_batch(args: argparse.Namespace) -> int:
    import os

    from ctxagent import batch

    settings = batch.BatchSettings(
        engine=args.engine, engine_options=engine_options(args), recipe=args.recipe,
        budget=budget_from(args), concurrency=args.concurrency,
    )
    ray_options = {"address": args.ray_address, "workers": args.ray_workers, "cpus_per_worker": args.ray_cpus, "gpus_per_worker": args.ray_gpus}
    try:
        summary = batch.run(
            args.corpus, args.questions, args.out, settings=settings, executor=args.executor,
            retry_errors=args.retry_errors, progress=not args.no_progress, ray_options=ray_options,
        )
    except KeyboardInterrupt:
        # Every finished answer is already fsync'd in OUT. Worker threads may be inside the model,
        # where they cannot be stopped, and a normal interpreter exit would wait on or abort them.
        print(f"ctxagent: interrupted; the answers so far are in {args.out}: run the same command again to resume", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    print(
        f"ctxagent batch: {summary.answered} answered, {summary.failed} failed, {summary.skipped} already in {summary.out}, "
        f"{summary.total} in all ({summary.seconds:.1f} s)",
        file=sys.stderr,
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ctxagent import engines, recipes

    listing = {"engines": engines.registry.names(), "recipes": recipes.registry.names()}
    for name in ("compressors", "retrievers"):
        try:
            module = __import__(f"ctxagent.{name}", fromlist=["registry"])
            listing[name] = module.registry.names()
        except (ImportError, AttributeError):
            pass
    print(json.dumps(listing) if args.json else "\n".join(f"{k}: {', '.join(v)}" for k, v in listing.items()))
    return 0


def _csv(kind: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None

    return parse


def cmd_effective_context(args: argparse.Namespace) -> int:
    """`ctxagent eval --effective-context`: measure, store per model and print the table."""
    from ctxagent.engines import get_engine
    from ctxagent.evaluation.reach import DEFAULT_DEPTHS, measure_effective_context

    from ctxagent.evaluation.eval_models import resolve_model

    options = engine_options(args)
    if "model" in options:
        options["model"] = resolve_model(options["model"])
    if args.context_window:
        options["context_window"] = args.context_window
    engine = get_engine(args.engine, **options)
    depths = args.depths if args.depths != [0.1, 0.5, 0.9] else list(DEFAULT_DEPTHS)
    result = measure_effective_context(engine, depths=depths, samples=args.samples, seed=args.seed)
    if args.json:
        print(json.dumps({"model": result.model, "tokens": result.tokens, "threshold": result.threshold, "accuracy_by_length": result.accuracy_by_length}))
    else:
        print(result.markdown())
        print("stored per model in the ctxagent cache; `auto` sizes its chunks with it", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ctxagent.evaluation import evaluate, report_only

    if args.effective_context:
        return cmd_effective_context(args)

    command = "ctxagent " + " ".join(sys.argv[1:]) if args.command_line is None else args.command_line
    if args.report_only:
        path = report_only(args.out, command=command, plots=not args.no_plots)
    else:
        run = evaluate(
            recipes=args.recipes,
            engine=args.engine,
            engine_options=engine_options(args),
            context_window=args.context_window,
            kinds=args.kinds,
            lengths=args.lengths,
            depths=args.depths,
            samples=args.samples,
            seed=args.seed,
            tasks=args.tasks,
            documents=args.docs,
            qa=args.qa,
            out=args.out,
            budget=budget_from(args),
            generate_only=args.generate_only,
            plots=not args.no_plots,
            command=command,
            allow_dirty=args.allow_dirty,
        )
        if run.report is None:
            print(f"wrote {len(run.tasks)} tasks to {run.tasks_file}")
            return 0
        path = run.report
    if args.json:
        print((path.parent / "summary.json").read_text())
    else:
        print(path.read_text())
        print(f"report: {path}", file=sys.stderr)
    return 0


def _add_eval_parser(sub) -> None:
    from ctxagent.evaluation.tasks import TASK_KINDS

    ev = sub.add_parser("eval", help="evaluate recipes on long-context tasks (RULER-style) or your own QA pairs; writes a report with plots")
    ev.add_argument("--recipes", default="all", help="comma-separated recipe names, or all (default)")
    ev.add_argument("--context-window", type=int, help="cap the engine's window, e.g. 1024, so short tasks are already 'long'")
    ev.add_argument("--kinds", type=_csv(str), default=list(TASK_KINDS), help=f"task kinds (default all): {','.join(TASK_KINDS)}")
    ev.add_argument("--lengths", type=_csv(int), default=[1024, 2048, 4096], help="document lengths in the engine's tokens (default 1024,2048,4096)")
    ev.add_argument("--depths", type=_csv(float), default=[0.1, 0.5, 0.9], help="needle depths in [0,1] (default 0.1,0.5,0.9)")
    ev.add_argument("--samples", type=int, default=1, help="tasks per kind x length x depth (default 1)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--tasks", help="reuse a saved task file (JSONL or .jsonl.gz) instead of generating")
    ev.add_argument("--docs", nargs="+", help="your own documents (with --qa)")
    ev.add_argument("--qa", help="JSONL of {question, answer(s), document} for --docs")
    ev.add_argument("--out", default="eval-results", help="output folder (default eval-results); a rerun resumes")
    ev.add_argument("--generate-only", action="store_true", help="write the tasks and stop")
    ev.add_argument("--report-only", action="store_true", help="rebuild the report from OUT/results.jsonl")
    ev.add_argument("--no-plots", action="store_true", help="markdown tables only")
    ev.add_argument("--json", action="store_true", help="print the per-recipe summary as JSON")
    ev.add_argument("--effective-context", action="store_true", help="measure the model's effective context (longest length at which single needles are still found reading densely) and store it for auto's chunk sizes")
    ev.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes; the results name the commit as '<commit>-dirty'")
    ev.add_argument("--command-line", help=argparse.SUPPRESS)
    _add_engine_options(ev)
    ev.epilog = "--model also takes an evaluation model's name (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b): its GGUF is fetched, assembled and checked on first use (ctxagent/evaluation/eval_models.py)"
    _add_budget_options(ev)
    ev.set_defaults(func=cmd_eval, max_new_tokens=64)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctxagent", description="Ask questions of documents longer than your model's context window.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question about a file (.txt .md .html .pdf .docx .pptx .xlsx .epub .csv .json, - for stdin) or across a folder")
    ask.add_argument("file")
    ask.add_argument("question")
    ask.add_argument("--recipe", default="auto", help="recipe name (default auto); see `ctxagent list`")
    ask.add_argument("--json", action="store_true", help="print the whole Answer as one JSON line")
    ask.add_argument("--encoding", default="utf-8", help="text encoding of the file (default utf-8)")
    ask.add_argument("--stream", action="store_true", help="show the plan, the steps and the draft answer as it is written, then the checked answer")
    ask.add_argument("--k", type=int, default=8, help="corpus: chunks retrieved across the corpus (default 8)")
    ask.add_argument("--max-documents", type=int, default=4, help="corpus: documents read among those retrieved (default 4)")
    _add_index_options(ask)
    _add_engine_options(ask)
    _add_budget_options(ask)
    ask.set_defaults(func=cmd_ask)

    idx = sub.add_parser("index", help="build or update the persistent search index of a folder (or .jsonl) of documents")
    idx.add_argument("corpus", help="a folder of documents, or a .jsonl of {\"id\", \"text\"} lines")
    idx.add_argument("--encoding", default="utf-8", help="text encoding of the files (default utf-8)")
    idx.add_argument("--executor", choices=["local", "ray"], default="local", help="read and embed here (default) or on Ray workers")
    idx.add_argument("--ray-address", help="Ray cluster to join (default: start a local one)")
    idx.add_argument("--no-progress", action="store_true", help="no progress bar")
    idx.add_argument("--json", action="store_true", help="print the update report as JSON")
    _add_index_options(idx)
    idx.set_defaults(func=cmd_index)

    bat = sub.add_parser("batch", help="answer a JSONL of questions over a corpus; resumable, writes JSONL")
    bat.add_argument("corpus", help="a folder of documents, or a .jsonl of {\"id\", \"text\"} lines")
    bat.add_argument("questions", help="a .jsonl of {\"id\", \"doc\", \"question\"} lines")
    bat.add_argument("-o", "--out", required=True, help="output .jsonl; rerunning with the same file resumes")
    bat.add_argument("--recipe", default="auto", help="recipe name (default auto)")
    bat.add_argument("--concurrency", type=int, default=8, help="questions in flight at once, their engine calls merged (default 8)")
    bat.add_argument("--executor", choices=["local", "ray"], default="local", help="local threads (default) or a Ray cluster")
    bat.add_argument("--ray-address", help="Ray cluster to join (default: start a local one)")
    bat.add_argument("--ray-workers", type=int, help="Ray workers, one engine each (default: as the cluster's CPUs/GPUs allow)")
    bat.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per Ray worker (default 1)")
    bat.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per Ray worker (default 0)")
    bat.add_argument("--retry-errors", action="store_true", help="ask again the questions whose earlier result was an error")
    bat.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine_options(bat)
    _add_budget_options(bat)
    bat.set_defaults(func=cmd_batch)

    srv = sub.add_parser("serve", help="serve the recipes over an OpenAI-compatible HTTP API (needs ctxagent[serve])")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one, printed at start)")
    srv.add_argument("--api-key", action="append", help="accept 'Authorization: Bearer KEY'; repeat for several keys (default $CTXAGENT_API_KEY; none: no key needed)")
    srv.add_argument("--api-keys-file", help="file of accepted keys, one a line: 'key' or 'name: key' (the name is the key's id in /metrics)")
    srv.add_argument("--max-per-key", type=int, help="requests in flight per key; more get 429 with Retry-After (default: no limit)")
    srv.add_argument("--context-window", type=int, help="cap the engine's window (tokens)")
    srv.add_argument("--served-model-name", help="id of the engine's own model in /v1/models (default: the engine's model name)")
    srv.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024, help="larger request bodies get 413 (default 32 MiB)")
    srv.add_argument("--request-timeout", type=float, default=600.0, help="seconds before a request gets 504 (default 600)")
    srv.add_argument("--max-concurrent", type=int, default=64, help="requests worked on at once (default 64); their engine calls are batched")
    srv.add_argument("--batch-wait", type=float, default=0.02, help="seconds to wait for other requests' engine calls to batch with (default 0.02)")
    srv.add_argument("--trim-seconds", type=float, default=5.0, help="at most this often, after a request, give native memory malloc holds free back to the system (default 5; 0: never)")
    _add_engine_options(srv)
    _add_budget_options(srv)
    srv.set_defaults(func=cmd_serve)

    listing = sub.add_parser("list", help="list the registered engines, recipes, retrievers and compressors")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    _add_eval_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # ctxagent's own progress (model conversion, index building) always shows; libraries' only with -v.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("ctxagent").setLevel(logging.INFO)
    if not args.verbose:
        envs.set_default("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight-loading bars
    try:
        return args.func(args)
    except CtxAgentError as exc:
        print(f"ctxagent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ctxagent: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
