"""A circuit breaker per instance: stop calling an instance that fails or is slow, then probe it back.

Pure and synchronous: time comes from an injected clock, so every transition can be tested without sleeping.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from harness.resilience._clock import Clock, SystemClock

# A time window is kept as this many buckets at most, so memory does not grow with the call rate.
# An outcome leaves the window between window_size * (1 - 1/_TIME_BUCKETS) and window_size seconds
# after it was recorded.
_TIME_BUCKETS = 100


class BreakerState(enum.Enum):
    """Where a breaker is in its cycle."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    """When a breaker opens, how long it stays open, and how many probes decide whether it closes."""

    window_size: int = 20
    """Calls (count window) or seconds (time window)."""
    window_type: Literal["count", "time"] = "count"
    minimum_calls: int = 10
    """No verdict before this many outcomes are in the window."""
    failure_rate_threshold: float = 0.5
    """Open when failures / calls >= this."""
    slow_call_duration: float | None = None
    """Seconds from which a call counts as slow; None disables slow-call tracking."""
    slow_call_rate_threshold: float = 1.0
    """Open when slow calls / calls >= this (only with slow_call_duration set)."""
    open_duration: float = 5.0
    half_open_calls: int = 1

    def __post_init__(self) -> None:
        if self.window_type not in ("count", "time"):
            raise ValueError(f"window_type must be 'count' or 'time', got {self.window_type!r}")
        if self.window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {self.window_size}")
        if self.minimum_calls < 1:
            raise ValueError(f"minimum_calls must be >= 1, got {self.minimum_calls}")
        if self.window_type == "count" and self.minimum_calls > self.window_size:
            raise ValueError(
                f"minimum_calls ({self.minimum_calls}) cannot exceed the count window_size "
                f"({self.window_size}): the breaker could never open"
            )
        if not 0 < self.failure_rate_threshold <= 1:
            raise ValueError(f"failure_rate_threshold must be in (0, 1], got {self.failure_rate_threshold}")
        if not 0 < (slow_rate := self.slow_call_rate_threshold) <= 1:
            raise ValueError(f"slow_call_rate_threshold must be in (0, 1], got {slow_rate}")
        slow = self.slow_call_duration
        if slow is not None and not (slow > 0 and math.isfinite(slow)):
            raise ValueError(f"slow_call_duration must be a positive number of seconds or None, got {slow}")
        if not (self.open_duration > 0 and math.isfinite(self.open_duration)):
            raise ValueError(f"open_duration must be a positive number of seconds, got {self.open_duration}")
        if self.half_open_calls < 1:
            raise ValueError(f"half_open_calls must be >= 1, got {self.half_open_calls}")

    @classmethod
    def consecutive_failures(
        cls, failures: int, open_duration: float, *, half_open_calls: int = 1
    ) -> BreakerConfig:
        """The classic "N consecutive failures, then open for T": a count window of N calls, all failed."""
        return cls(
            window_size=failures,
            window_type="count",
            minimum_calls=failures,
            failure_rate_threshold=1.0,
            open_duration=open_duration,
            half_open_calls=half_open_calls,
        )


@dataclass(frozen=True)
class BreakerTransition:
    """One change of state, as passed to listeners."""

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    """clock.monotonic() when the transition happened."""
    reason: str


@dataclass(frozen=True)
class Permit:
    """Admission of one call; identifies the breaker generation the call was admitted in."""

    generation: int
    state: BreakerState
    started_at: float


class BreakerOpen(Exception):
    """The breaker refused a call (OPEN, or HALF_OPEN with every probe slot taken).

    The pure core's own error; a caller maps it to its own (ServiceClient: ``CircuitOpenError``)."""

    def __init__(self, message: str, *, instance: str, retry_in: float) -> None:
        super().__init__(message)
        self.instance = instance
        self.retry_in = retry_in


@dataclass(frozen=True)
class BreakerSnapshot:
    """What a breaker looks like now, for metrics, probes and reports."""

    state: BreakerState
    failure_rate: float
    slow_call_rate: float
    calls_in_window: int
    half_open_in_flight: int
    retry_in: float


@dataclass(frozen=True)
class _Totals:
    calls: int
    failures: int
    slow: int


class _CountWindow:
    """The last `size` outcomes."""

    def __init__(self, size: int) -> None:
        self._outcomes: deque[tuple[bool, bool]] = deque(maxlen=size)

    def record(self, failed: bool, slow: bool, now: float) -> None:
        self._outcomes.append((failed, slow))

    def totals(self, now: float) -> _Totals:
        return _Totals(
            calls=len(self._outcomes),
            failures=sum(failed for failed, _ in self._outcomes),
            slow=sum(slow for _, slow in self._outcomes),
        )

    def clear(self) -> None:
        self._outcomes.clear()


@dataclass(slots=True)
class _Bucket:
    start: float
    calls: int = 0
    failures: int = 0
    slow: int = 0


class _TimeWindow:
    """Outcomes of the last `seconds`, merged into buckets (see _TIME_BUCKETS)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._resolution = seconds / _TIME_BUCKETS
        self._buckets: deque[_Bucket] = deque()  # oldest first

    def record(self, failed: bool, slow: bool, now: float) -> None:
        self._prune(now)
        if not self._buckets or now - self._buckets[-1].start >= self._resolution:
            self._buckets.append(_Bucket(now))
        bucket = self._buckets[-1]
        bucket.calls += 1
        bucket.failures += failed
        bucket.slow += slow

    def totals(self, now: float) -> _Totals:
        self._prune(now)
        return _Totals(
            calls=sum(b.calls for b in self._buckets),
            failures=sum(b.failures for b in self._buckets),
            slow=sum(b.slow for b in self._buckets),
        )

    def clear(self) -> None:
        self._buckets.clear()

    def _prune(self, now: float) -> None:
        while self._buckets and now - self._buckets[0].start >= self._seconds:
            self._buckets.popleft()


class CircuitBreaker:
    """CLOSED -> OPEN -> HALF_OPEN -> CLOSED or OPEN, driven by recorded outcomes and the clock.

    Every call takes a `Permit` from `acquire()` and settles it exactly once with `record_success`,
    `record_failure` or `release`. A transition starts a new generation; outcomes of permits from an
    older generation are ignored, so a call admitted while CLOSED cannot decide a HALF_OPEN verdict.
    Not thread-safe: meant for one event loop, where synchronous code cannot interleave.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig = BreakerConfig(),
        *,
        clock: Clock | None = None,
        listeners: Iterable[Callable[[BreakerTransition], None]] = (),
    ) -> None:
        self.name = name
        self.config = config
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._listeners: list[Callable[[BreakerTransition], None]] = list(listeners)
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._window: _CountWindow | _TimeWindow
        if config.window_type == "count":
            self._window = _CountWindow(config.window_size)
        else:
            self._window = _TimeWindow(config.window_size)
        self._opened_at = 0.0
        # HALF_OPEN bookkeeping: probes handed out and not settled (by identity, so a permit settled twice
        # or never issued cannot free a slot), and probes that succeeded (they keep their slot).
        self._probes: list[Permit] = []
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        """The current state; reading it moves an OPEN breaker whose time is up to HALF_OPEN."""
        if self._state is BreakerState.OPEN and self._open_remaining() <= 0:
            self._transition(BreakerState.HALF_OPEN, f"open for {self.config.open_duration}s elapsed")
        return self._state

    def available(self) -> bool:
        """Would acquire() succeed now?"""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            return self._free_probe_slots() > 0
        return False

    def retry_in(self) -> float:
        """Seconds until an OPEN breaker admits probes; 0 when it is not OPEN."""
        return self._open_remaining() if self.state is BreakerState.OPEN else 0.0

    def acquire(self) -> Permit:
        """Admit one call, or raise BreakerOpen without touching anything else."""
        state = self.state
        now = self._clock.monotonic()
        if state is BreakerState.CLOSED:
            return Permit(self._generation, state, now)
        if state is BreakerState.HALF_OPEN:
            if self._free_probe_slots() > 0:
                permit = Permit(self._generation, state, now)
                self._probes.append(permit)
                return permit
            raise BreakerOpen(
                f"breaker {self.name!r} is half-open and its {self.config.half_open_calls} probe slot(s) "
                "are taken",
                instance=self.name,
                retry_in=0.0,
            )
        retry_in = self._open_remaining()
        raise BreakerOpen(
            f"breaker {self.name!r} is open; probes are admitted in {retry_in:.3f}s",
            instance=self.name,
            retry_in=retry_in,
        )

    def record_success(self, permit: Permit, duration: float | None = None) -> None:
        """The call admitted by `permit` succeeded; `duration` defaults to the time since it was admitted."""
        self._record(permit, failed=False, duration=duration)

    def record_failure(self, permit: Permit, duration: float | None = None) -> None:
        """The call admitted by `permit` failed."""
        self._record(permit, failed=True, duration=duration)

    def release(self, permit: Permit) -> None:
        """The call ended with no verdict (cancelled, say): free its probe slot and record nothing."""
        if self._is_current(permit) and self._state is BreakerState.HALF_OPEN:
            self._take_probe(permit)

    def add_listener(self, listener: Callable[[BreakerTransition], None]) -> None:
        """Call `listener` with every later transition, after the listeners already added."""
        self._listeners.append(listener)

    def snapshot(self) -> BreakerSnapshot:
        """The state and window figures now."""
        state = self.state
        totals = self._window.totals(self._clock.monotonic())
        return BreakerSnapshot(
            state=state,
            failure_rate=totals.failures / totals.calls if totals.calls else 0.0,
            slow_call_rate=totals.slow / totals.calls if totals.calls else 0.0,
            calls_in_window=totals.calls,
            half_open_in_flight=len(self._probes),
            retry_in=self.retry_in(),
        )

    def reset(self) -> None:
        """Back to CLOSED with an empty window; calls in flight no longer count."""
        if self._state is BreakerState.CLOSED:
            # No transition to report, but calls admitted before the reset must not count either.
            self._generation += 1
            self._window.clear()
        else:
            self._transition(BreakerState.CLOSED, "reset")

    # -- internals -----------------------------------------------------------------------------------------

    def _record(self, permit: Permit, *, failed: bool, duration: float | None) -> None:
        if not self._is_current(permit):
            return
        now = self._clock.monotonic()
        if duration is None:
            duration = now - permit.started_at
        slow_limit = self.config.slow_call_duration
        slow = slow_limit is not None and duration >= slow_limit
        if self._state is BreakerState.CLOSED:
            self._window.record(failed, slow, now)
            self._judge_window(now)
        elif self._state is BreakerState.HALF_OPEN and self._take_probe(permit):
            if failed:
                self._transition(BreakerState.OPEN, "probe failed")
            elif slow:
                self._transition(BreakerState.OPEN, f"probe slow ({duration:.2f}s >= {slow_limit:.2f}s)")
            else:
                self._probe_successes += 1
                count = self._probe_successes
                if count >= self.config.half_open_calls:
                    probes = f"{count} probe" + ("s" if count > 1 else "")
                    self._transition(BreakerState.CLOSED, f"{probes} succeeded")

    def _judge_window(self, now: float) -> None:
        totals = self._window.totals(now)
        config = self.config
        if totals.calls < config.minimum_calls:
            return
        over = f"over {totals.calls} calls"
        failure_rate = totals.failures / totals.calls
        if failure_rate >= config.failure_rate_threshold:
            threshold = config.failure_rate_threshold
            self._transition(BreakerState.OPEN, f"failure rate {failure_rate:.2f} >= {threshold:.2f} {over}")
            return
        slow_rate = totals.slow / totals.calls
        if config.slow_call_duration is not None and slow_rate >= config.slow_call_rate_threshold:
            threshold = config.slow_call_rate_threshold
            self._transition(
                BreakerState.OPEN,
                f"slow-call rate {slow_rate:.2f} >= {threshold:.2f} {over} "
                f"(slow: >= {config.slow_call_duration}s)",
            )

    def _transition(self, to_state: BreakerState, reason: str) -> None:
        now = self._clock.monotonic()
        transition = BreakerTransition(self.name, self._state, to_state, now, reason)
        self._state = to_state
        self._generation += 1
        self._window.clear()
        self._probes.clear()
        self._probe_successes = 0
        if to_state is BreakerState.OPEN:
            self._opened_at = now
        # State is consistent before any listener runs, so a listener may read the breaker.
        for listener in list(self._listeners):
            listener(transition)

    def _is_current(self, permit: Permit) -> bool:
        return permit.generation == self._generation

    def _take_probe(self, permit: Permit) -> bool:
        """Remove `permit` from the outstanding probes; False if it is not one of them."""
        for index, probe in enumerate(self._probes):
            if probe is permit:
                del self._probes[index]
                return True
        return False

    def _free_probe_slots(self) -> int:
        return self.config.half_open_calls - len(self._probes) - self._probe_successes

    def _open_remaining(self) -> float:
        return max(0.0, self._opened_at + self.config.open_duration - self._clock.monotonic())
