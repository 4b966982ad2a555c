"""A simulated platform's durable record of the calls it received.

A real platform keeps what it was sent whatever becomes of the worker that sent it. The
simulator lives inside the worker's process, so to let a test kill workers and still see what
"the platform" received, a simulator connection can name a file (setting ``record_to``): every
call is appended to it as one JSON line with its idempotency key, and fsynced before ``perform``
returns. Several processes may share one file; an exclusive ``flock`` orders their appends.

The same file serves a reconciling simulator (setting ``reconcile``) as the platform's memory of
transaction ids: which keys it has seen, and what it answered.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qunyun.connectors.base import ActionResult, ResultStatus


@dataclass(frozen=True)
class RecordedCall:
    """One call the platform received."""

    key: str
    kind: str
    group: str | None
    text: str | None
    result: ActionResult

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "group": self.group,
            "text": self.text,
            "status": self.result.status.value,
            "ref": self.result.external_ref,
            "detail": self.result.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordedCall:
        result = ActionResult(ResultStatus(data["status"]), data.get("ref"), data.get("detail") or "")
        return cls(data["key"], data["kind"], data.get("group"), data.get("text"), result)


class CallRecording:
    """The append-only file of calls (see the module docstring); thread- and process-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0  # exclusive() is re-entrant in this process; the flock is taken once
        self._offset = 0
        self._by_key: dict[str, RecordedCall] = {}

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the file for a look-up followed by an append (no other process in between)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with open(self.path, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, call: RecordedCall) -> None:
        """Write ``call`` and fsync it: once this returns, the platform has it for good."""
        line = (json.dumps(call.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
        with self.exclusive():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def find(self, key: str) -> RecordedCall | None:
        """The first call recorded with ``key`` (by any process), or None."""
        with self._lock:
            self._catch_up()
            return self._by_key.get(key)

    def calls(self) -> list[RecordedCall]:
        """Every recorded call, in the order received."""
        return read_calls(self.path)

    def _catch_up(self) -> None:
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        for raw in data[:end].splitlines():
            if raw.strip():
                call = RecordedCall.from_json(json.loads(raw))
                self._by_key.setdefault(call.key, call)
        self._offset += end


def read_calls(path: str | os.PathLike[str]) -> list[RecordedCall]:
    """The calls recorded in the file at ``path``, in the order received."""
    out = []
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n") and raw.strip():
                out.append(RecordedCall.from_json(json.loads(raw)))
    return out
