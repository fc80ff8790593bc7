"""A real model for the GPU benchmarks, loaded with transformers alone (no ctxagent
engine, so no pydantic): a GGUF file is de-quantised once into a transformers folder,
then loaded from there at any length, with YaRN RoPE scaling past its native window.

    python benchmarks/real_model.py MODEL.gguf --out /tmp/qwen-hf     # convert only

Used by needles_real.py. Reading a GGUF needs the `gguf` package (transformers'
GGUF loader); a converted folder needs only torch and transformers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import torch

if __name__ == "__main__":  # run as a script, benchmarks/ is first on the path: its kernels.py must not shadow `kernels`
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE]


def converted(model: Path, out: Path | None = None) -> Path:
    """A transformers folder for `model`: the folder itself, or a GGUF file converted into
    `out` (default: beside the file, `<stem>-hf`), once; a finished conversion is reused."""
    model = Path(model)
    if model.is_dir():
        return model
    out = Path(out) if out else model.with_name(model.stem + "-hf")
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.time()
    tokenizer = AutoTokenizer.from_pretrained(model.parent, gguf_file=model.name)
    weights = AutoModelForCausalLM.from_pretrained(model.parent, gguf_file=model.name, dtype=torch.float32)
    weights.hf_quantizer = None  # de-quantised: plain tensors now
    if hasattr(weights.config, "quantization_config"):
        del weights.config.quantization_config
    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")
    weights.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    print(f"converted {model.name} -> {out} in {time.time() - started:.0f} s", flush=True)
    return out


def native_window(folder: Path) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(folder).max_position_embeddings)


def load(folder: Path, tokens: int, dtype: torch.dtype, device: str, native: int | None = None):
    """Tokenizer and model from a transformers folder; past `native` tokens (default: the
    config's window) the RoPE is stretched with YaRN by tokens / native."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    native = native or int(config.max_position_embeddings)
    rope = "native"
    if tokens > native:
        theta = config.rope_parameters["rope_theta"]
        factor = tokens / native
        config.rope_parameters = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": native, "rope_theta": theta}
        config.max_position_embeddings = tokens
        rope = f"yarn x{factor:g}"
    model = AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=dtype, attn_implementation="sdpa").to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer, model, rope


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    print(converted(args.model, args.out))


if __name__ == "__main__":
    main()
