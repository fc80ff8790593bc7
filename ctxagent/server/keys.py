"""API keys: several keys, each known by an id that is safe to show, and a per-key limit
on requests worked on at once.

The key itself is compared in constant time and never kept anywhere it could be printed:
logs, metrics and errors name a request's key by its id only. An id is the name given in
a keys file (`name: key` lines), or `key-` and the first 8 hex digits of the key's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ctxagent.errors import InputError

NO_KEY = "none"  # the key id of requests to a server started without keys


def key_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def read_keys_file(path: str | Path) -> dict[str, str]:
    """`{id: key}` from a file of one key a line, `key` or `name: key`; blank lines and `#` comments skipped."""
    keys: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the keys file {path} ({exc.strerror})") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, key = line.partition(":")
        name, key = (name.strip(), key.strip()) if sep else (None, line)
        if not key or (sep and not name) or any(c.isspace() for c in key):
            raise InputError(f"{path} line {n}: expected 'key' or 'name: key' (a key has no spaces)")
        keys[name or key_id(key)] = key
    return keys


def keys_by_id(keys: Iterable[str] = (), keys_file: str | Path | None = None) -> dict[str, str]:
    """Every key the server accepts, by id: the `--api-key` values, then the keys file's."""
    found = {key_id(k): k for k in keys}
    if keys_file is not None:
        found.update(read_keys_file(keys_file))
    if len(set(found.values())) < len(found):
        raise InputError("the same API key is listed under two names: give each key once")
    return found


@dataclass
class KeyRing:
    """Which key a request carries, and how many requests each key has in flight."""

    keys: dict[str, str]  # id -> key
    max_per_key: int | None = None
    _in_flight: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def identify(self, authorization: str) -> str | None:
        """The id of the key in an `Authorization: Bearer KEY` header; None if no key matches.
        Every key is compared (in constant time), so the time taken says nothing about which."""
        if not self.keys:
            return NO_KEY
        given = (authorization[7:] if authorization[:7].lower() == "bearer " else "").strip().encode()
        match = None
        for kid, key in self.keys.items():
            if hmac.compare_digest(given, key.encode()):
                match = kid
        return match

    def acquire(self, kid: str) -> bool:
        """Count one more request in flight for `kid`; False (and nothing counted) at its limit."""
        with self._lock:
            n = self._in_flight.get(kid, 0)
            if self.max_per_key is not None and n >= self.max_per_key:
                return False
            self._in_flight[kid] = n + 1
            return True

    def release(self, kid: str) -> None:
        with self._lock:
            n = self._in_flight.get(kid, 0) - 1
            if n > 0:
                self._in_flight[kid] = n
            else:
                self._in_flight.pop(kid, None)  # nothing kept for keys with nothing in flight
