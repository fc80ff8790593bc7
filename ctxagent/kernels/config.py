"""Per-head sparse patterns, saved as JSON.

A config names, for every (layer, query head), one pattern and its budget, plus the
length below which prefill stays dense. `search.py` writes one from calibration text;
`default_config()` is what runs when there is none: vertical-slash on every head, the
pattern with the best recall per cost on the structured attention we measured.

    {"block": 64, "min_length": 8192, "dense_tail": 256,
     "default": {"kind": "vertical_slash", "n_vertical": 1024, "n_diag": 32},
     "layers": {"0": [{"kind": "a_shape", "sink": 64, "local": 1024}, ...], ...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("dense", "a_shape", "vertical_slash", "block_sparse")
DEFAULT_DENSE_TAIL = 256

# Budgets when a pattern is named without them (absolute token counts: they suit 32K-128K
# prompts; `search.py` tunes them per head for a model).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "dense": {},
    "a_shape": {"sink": 64, "local": 2048},
    "vertical_slash": {"n_vertical": 1024, "n_diag": 32, "last_q": 64, "gamma": 1.0, "spread_q": 0, "per_row": False},
    "block_sparse": {"gamma": 0.95, "max_blocks": 64, "estimate": "lse"},
}


@dataclass(frozen=True)
class HeadPattern:
    """One head's pattern: `kind` from KINDS and its parameters (budgets)."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown sparse pattern {self.kind!r}; known: {', '.join(KINDS)}")
        allowed = set(DEFAULT_PARAMS[self.kind])
        unknown = {k for k, _ in self.params} - allowed
        if unknown:
            raise ValueError(f"pattern {self.kind!r} takes {sorted(allowed) or 'no parameters'}; got unknown {sorted(unknown)}")

    @classmethod
    def make(cls, kind: str, **params: Any) -> "HeadPattern":
        merged = {**DEFAULT_PARAMS.get(kind, {}), **params}
        return cls(kind, tuple(sorted(merged.items())))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HeadPattern":
        data = dict(data)
        if "kind" not in data:
            raise ValueError(f"a head pattern needs a 'kind' ({', '.join(KINDS)}); got {data}")
        return cls.make(data.pop("kind"), **data)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.params)}

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass
class SparseConfig:
    """Patterns for every head. Layers or heads not listed use `default`."""

    default: HeadPattern = field(default_factory=lambda: HeadPattern.make("vertical_slash"))
    layers: dict[int, list[HeadPattern]] = field(default_factory=dict)
    block: int = 64
    min_length: int = 8192
    # The last `dense_tail` query rows of a sparse prefill attend to every key: the end of a
    # prompt (the question, the chat template's turn) decides the first answer token. On
    # SmolLM2 at 8K (36 needles, greedy) dense answered 30; a searched config at 15%
    # density 21, and 29 with the last 256 rows dense; the default vertical-slash 29, and
    # 30 with them (docs/kernels.md). It costs tail * N of the N^2 / 2 scores (6% at 8K,
    # 0.4% at 128K), about 1% of the time to first token at 128K. Under chunked prefill
    # it applies to each chunk. 0 turns it off (the patterns' own speed).
    dense_tail: int = DEFAULT_DENSE_TAIL

    def pattern(self, layer: int, head: int) -> HeadPattern:
        heads = self.layers.get(layer)
        if heads is None or head >= len(heads):
            return self.default
        return heads[head]

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "min_length": self.min_length,
            "dense_tail": self.dense_tail,
            "default": self.default.to_dict(),
            "layers": {str(layer): [p.to_dict() for p in heads] for layer, heads in sorted(self.layers.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SparseConfig":
        unknown = set(data) - {"block", "min_length", "dense_tail", "default", "layers"}
        if unknown:
            raise ValueError(f"sparse config has unknown keys {sorted(unknown)}; expected block, min_length, dense_tail, default, layers")
        block = int(data.get("block", 64))
        if block not in (16, 32, 64, 128):
            raise ValueError(f"sparse config 'block' must be 16, 32, 64 or 128; got {block}")
        return cls(
            default=HeadPattern.from_dict(data["default"]) if "default" in data else HeadPattern.make("vertical_slash"),
            layers={int(k): [HeadPattern.from_dict(p) for p in v] for k, v in data.get("layers", {}).items()},
            block=block,
            min_length=int(data.get("min_length", 8192)),
            dense_tail=int(data.get("dense_tail", DEFAULT_DENSE_TAIL)),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SparseConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"sparse config {path} does not exist; write one with `python -m ctxagent.kernels.search`") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"sparse config {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def default_config() -> SparseConfig:
    return SparseConfig()


def resolve_config(spec: Any) -> SparseConfig:
    """Accepts True / "default", a SparseConfig, a dict (config or a single pattern with
    optional min_length/block/dense_tail), or a path to a JSON file."""
    if spec is True or spec == "default" or spec is None:
        return default_config()
    if isinstance(spec, SparseConfig):
        return spec
    if isinstance(spec, dict):
        if "kind" in spec:  # one pattern for every head
            spec = dict(spec)
            extra = {k: spec.pop(k) for k in ("min_length", "block", "dense_tail") if k in spec}
            return SparseConfig.from_dict({"default": spec, **extra})
        return SparseConfig.from_dict(spec)
    if isinstance(spec, (str, Path)):
        if isinstance(spec, str) and spec in KINDS:
            return SparseConfig(default=HeadPattern.make(spec))
        return SparseConfig.load(spec)
    raise TypeError(f"sparse_prefill must be True, a pattern name, a dict, a SparseConfig or a JSON path; got {type(spec).__name__}")
