"""Locust's stats-history rows as ``load.sample`` events on the run's timeline, and the rate they show.

A row has a whole-second wall-clock timestamp: it is placed at the middle of its second, on the monotonic
clock every process shares, so samples line up with the services' events and the fault windows. The middle
of its second can lie before Locust even started (its first row is written within half a second of its
launch) or after the row was read: a row is placed no earlier than the sampler was made, nor later than
it was read, so every row lands inside the run's window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from harness.events import EventLog
from harness.load._stats import HistoryRow


class LoadSampler:
    """Turns stats-history rows into ``load.sample`` events, one per row. A sample's rate is the requests
    completed since the row ``span`` rows before (1: the previous row; distributed runs use 2, as workers
    report once a second, out of step with the rows)."""

    def __init__(self, events: EventLog, *, span: int = 1, clock: Callable[[], float] = time.time) -> None:
        self.events = events
        self.span = span
        self.clock = clock  # the wall clock
        self.offset = time.time() - time.monotonic()  # wall minus monotonic, now
        self.created = clock()  # Locust, started after this, wrote every row later
        self.points: list[tuple[float, int, int]] = []  # (wall time, requests, failures)
        self.latest: HistoryRow | None = None
        self.rate = 0.0

    def started(self, mono: float) -> None:
        self.points = [(mono + self.offset, 0, 0)]

    def add(self, rows: list[HistoryRow]) -> None:
        for row in rows:
            at = min(max(row.timestamp + 0.5, self.created), self.clock())
            since = self.points[max(0, len(self.points) - self.span)] if self.points else (at - 1.0, 0, 0)
            seconds = max(at - since[0], 0.5)  # the first row can fall right at the start
            self.rate = max(0, row.requests - since[1]) / seconds
            failures = max(0, row.failures - since[2]) / seconds
            self.points.append((at, row.requests, row.failures))
            self.latest = row
            self.events.emit(
                "load.sample",
                ts=datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds"),
                mono=at - self.offset,
                users=row.users,
                rate=round(self.rate, 3),
                failures=round(failures, 3),
                p50=row.p50_ms,
                p95=row.p95_ms,
                p99=row.p99_ms,
            )
