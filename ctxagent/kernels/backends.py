"""Which implementation a kernel call runs: Triton or its torch reference.

Every kernel entry point (the attention, the block-LSE estimate, the fused vertical-slash
estimate) takes `backend`: "triton", "torch" (the reference), or "auto" (Triton on CUDA,
else torch). One rule for all of them, here, with no import of the kernels themselves."""

from __future__ import annotations

import torch

BACKENDS = ("auto", "triton", "torch")


def triton_usable(device: torch.device) -> bool:
    """True on CUDA devices with Triton installed. On CPU, "auto" means the torch
    reference; Triton's interpreter (TRITON_INTERPRET=1) runs only when asked for by
    backend="triton", as the kernel tests do: it is far too slow for a model."""
    if device.type != "cuda":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def use_triton(backend: str, device: torch.device) -> bool:
    """backend "triton" always, "auto" where `triton_usable`, "torch" never; anything else is an error."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    return backend == "triton" or (backend == "auto" and triton_usable(device))
