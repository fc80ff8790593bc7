"""OUT.jsonl as a durable log: append a line per finished question, fsync, resume from it.

A run killed mid-write can leave a torn last line; opening the log cuts it off (the
question it belonged to is simply asked again), so a rerun never duplicates or
loses a finished answer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ctxagent.batch.jobs import BatchResult

log = logging.getLogger(__name__)


class ResultLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, BatchResult] = {}
        if self.path.exists():
            self._recover()
        self._file = self.path.open("a", encoding="utf-8")

    def _recover(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
        if end < len(data):
            log.warning("%s: dropping a torn last line (%d bytes) from an interrupted run", self.path, len(data) - end)
            with self.path.open("r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        for number, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                result = BatchResult.model_validate_json(line)
            except ValueError:
                log.warning("%s line %d: not a result line; its question will be asked again", self.path, number)
                continue
            self.results[result.id] = result

    def finished(self, retry_errors: bool = False) -> set[str]:
        """Ids already done; with `retry_errors`, failed ones count as not done."""
        return {i for i, r in self.results.items() if r.ok or not retry_errors}

    def write(self, result: BatchResult) -> None:
        self._file.write(result.model_dump_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.results[result.id] = result

    def drop_errors(self) -> int:
        """Rewrite the log without its error lines (atomically), before retrying them."""
        failed = [i for i, r in self.results.items() if not r.ok]
        if not failed:
            return 0
        self._file.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for result in self.results.values():
                if result.ok:
                    f.write(result.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        for i in failed:
            del self.results[i]
        self._file = self.path.open("a", encoding="utf-8")
        return len(failed)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ResultLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: str | Path) -> dict[str, BatchResult]:
    """The results in OUT.jsonl by question id (the last line wins for an id written twice)."""
    results: dict[str, BatchResult] = {}
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    result = BatchResult.model_validate_json(line)
                except ValueError:
                    continue
                results[result.id] = result
    return results
