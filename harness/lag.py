"""The harness's own timing lag: how late a thread that asks to wake every few milliseconds really wakes.

On a busy machine the harness cannot keep its schedule (send traffic at the offered rate, apply a fault on
time, time a breaker to the tenth of a second). Its lag is the evidence that says so: a check whose figures
depend on timing is inconclusive, not deviated, when the harness itself ran late. A thread measures it
rather than an event loop, so it sees the process's contention for the interpreter as well as the
machine's for its cores.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable

INTERVAL = 0.01
"""Seconds between wake-ups asked for."""
KEEP = 360_000
"""Samples kept (an hour at the default interval); older ones are dropped."""


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class LagMonitor:
    """Samples (monotonic time, lag in seconds) from ``start`` to ``stop``; safe to read meanwhile."""

    def __init__(
        self,
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._samples: deque[tuple[float, float]] = deque(maxlen=KEEP)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LagMonitor:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> LagMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="harness-lag", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def sample(self) -> None:
        """One wake-up: sleep the interval and record how much later than asked it returned."""
        asked = self._clock() + self.interval
        self._sleep(self.interval)
        woke = self._clock()
        self._samples.append((woke, max(0.0, woke - asked)))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()

    def lags(self, start: float | None = None, end: float | None = None) -> list[float]:
        """Lags (seconds) of the wake-ups in [start, end] (monotonic; None: unbounded)."""
        samples = list(self._samples)
        times = [at for at, _ in samples]
        low = 0 if start is None else bisect.bisect_left(times, start)
        high = len(samples) if end is None else bisect.bisect_right(times, end)
        return [lag for _, lag in samples[low:high]]

    def p99_ms(self, start: float | None = None, end: float | None = None) -> float | None:
        """The 99th percentile of the lag in milliseconds over [start, end]; None without samples."""
        value = percentile(self.lags(start, end), 0.99)
        return None if value is None else round(value * 1000, 2)
