"""Structured events as JSON lines, with wall-clock and monotonic time, so runs can be merged into a timeline.

Every process (a service instance, a ServiceClient, the harness itself) writes to its own file; the
harness later merges them by monotonic time (one machine, one clock) to align faults with reactions.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

EventSink = Callable[[Mapping[str, Any]], None]


class EventLog:
    """Appends one JSON object per line; safe to share between threads and coroutines.

    With no path it keeps events in memory only (``events``), which is what tests and short-lived
    clients use. ``listeners`` receive every event as it is written.
    """

    def __init__(
        self, source: str, path: str | os.PathLike[str] | None = None, *, keep: int = 10_000
    ) -> None:
        self.source = source
        self.path = Path(path) if path is not None else None
        self._keep = keep
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._closed = False
        self.events: list[dict[str, Any]] = []
        self.listeners: list[EventSink] = []

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Record ``event`` with ``fields``; returns the record as written."""
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
            "mono": time.monotonic(),
            "source": self.source,
            "event": event,
            **fields,
        }
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            self.events.append(record)
            if len(self.events) > self._keep:
                del self.events[: len(self.events) - self._keep]
            if self.path is not None and not self._closed:  # after close: memory only, no file left open
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = self.path.open("a", encoding="utf-8")
                self._file.write(line + "\n")
                self._file.flush()
        for listener in list(self.listeners):
            listener(record)
        return record

    def of_type(self, event: str) -> list[dict[str, Any]]:
        """The events kept in memory whose name is ``event``, oldest first."""
        with self._lock:
            return [e for e in self.events if e["event"] == event]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines event file, skipping a torn last line left by a killed process."""
    events: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events
