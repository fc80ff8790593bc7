"""Name -> class registries, one per subsystem, so users add backends without forking.

Built-ins register lazily as "module:Class" strings, so listing or choosing a
backend never imports torch, vllm or triton until that backend is used. Third-party
packages register through the entry-point group `ctxagent.<kind>s`
(e.g. `ctxagent.engines`), or at run time with the `register` decorator.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from ctxagent.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T] | str] = {}
        self._aliases: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: `@engines.register("mine") class MyEngine: ...`."""

        def decorate(cls: type[T]) -> type[T]:
            self._entries[name] = cls
            return cls

        return decorate

    def register_lazy(self, name: str, target: str) -> None:
        """Register "package.module:ClassName", imported on first use."""
        self._entries.setdefault(name, target)

    def alias(self, name: str, target: str) -> None:
        """`name` stands for the entry registered as `target` (an old name kept when one is renamed,
        or a second name); `names()` lists only the target."""
        self._aliases[name] = target

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def get(self, name: str) -> type[T]:
        self._load_entry_points()
        name = self._aliases.get(name, name) if name not in self._entries else name
        try:
            entry = self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"no {self.kind} named {name!r}; known: {', '.join(self.names())}. "
                f"Register your own with @ctxagent.{self.kind}s.register({name!r})."
            ) from None
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = entry
        return entry

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=f"ctxagent.{self.kind}s"):
            self._entries.setdefault(ep.name, ep.value)
