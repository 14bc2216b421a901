"""Deadline: one limit for a whole call, across attempts and waits, so retries cannot outlast the caller."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.resilience._clock import Clock, SystemClock


@dataclass(frozen=True)
class Deadline:
    """A point on a monotonic clock after which the call is no longer wanted."""

    expires_at: float
    clock: Clock
    seconds: float = math.inf  # the budget it was set with, for error messages

    @classmethod
    def after(cls, seconds: float, clock: Clock | None = None) -> Deadline:
        """A deadline `seconds` from now (math.inf: never)."""
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"a deadline needs seconds >= 0, got {seconds}")
        clock = clock if clock is not None else SystemClock()
        return cls(clock.monotonic() + seconds, clock, seconds)

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.expires_at - self.clock.monotonic())

    @property
    def expired(self) -> bool:
        """No time left."""
        return self.remaining() <= 0

    def cap(self, timeout: float) -> float:
        """`timeout`, shortened to what is left of the deadline."""
        return min(timeout, self.remaining())
