"""Retry policy: which requests may be retried and how long to wait; a budget so retries cannot multiply load.

Pure: randomness comes from a passed `random.Random` and time from an injected clock.
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from harness.resilience._clock import Clock, SystemClock

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

# 2.0 ** 1024 overflows; any exponent this large already puts the backoff at max_delay.
_MAX_EXPONENT = 1023
_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets, on which statuses it retries, and how long it waits in between."""

    max_attempts: int = 3
    """Total attempts, the first one included."""
    base_delay: float = 0.05
    max_delay: float = 2.0
    retry_on_status: frozenset[int] = frozenset({429, 502, 503, 504})
    honour_retry_after: bool = True
    max_retry_after: float = 30.0
    """A longer Retry-After means: do not retry, hand the response back."""
    idempotency_header: str = "Idempotency-Key"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not (0 <= self.base_delay <= self.max_delay and math.isfinite(self.max_delay)):
            raise ValueError(
                "delays must satisfy 0 <= base_delay <= max_delay < inf, "
                f"got base_delay={self.base_delay}, max_delay={self.max_delay}"
            )
        if not self.max_retry_after >= 0:
            raise ValueError(f"max_retry_after must be >= 0, got {self.max_retry_after}")
        if bad := sorted(s for s in self.retry_on_status if not 100 <= s <= 599):
            raise ValueError(f"retry_on_status holds values that are not HTTP statuses: {bad}")
        if not self.idempotency_header.strip():
            raise ValueError("idempotency_header must not be empty")

    def is_retryable_request(self, method: str, headers: Mapping[str, str]) -> bool:
        """An idempotent method, or a request with a non-empty idempotency key (header name in any case)."""
        if method.upper() in IDEMPOTENT_METHODS:
            return True
        wanted = self.idempotency_header.lower()
        return any(name.lower() == wanted and value.strip() for name, value in headers.items())

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform(0, min(max_delay, base_delay * 2 ** (retry_number - 1))), counting from 1."""
        if retry_number < 1:
            raise ValueError(f"retry_number counts from 1, got {retry_number}")
        cap = min(self.max_delay, self.base_delay * 2.0 ** min(retry_number - 1, _MAX_EXPONENT))
        return rng.uniform(0.0, cap)

    def delay(self, retry_number: int, rng: random.Random, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry `retry_number`, or None when the server asked for too long a wait."""
        if retry_after is not None and self.honour_retry_after:
            return max(retry_after, 0.0) if retry_after <= self.max_retry_after else None
        return self.backoff(retry_number, rng)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or HTTP-date); None when absent or unreadable.

    A date in the past gives 0.0. `now` (default: the current UTC time) is what a date is measured from.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # HTTP-dates are GMT; parsedate_to_datetime returns a naive datetime for "-0000".
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    return max((when - reference).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryBudgetSnapshot:
    """Calls and retries in the budget's window, and how many retries the window allows."""

    calls: int
    retries: int
    allowed: int


@dataclass(slots=True)
class _Bucket:
    start: float
    calls: int = 0
    retries: int = 0


# The window is kept as at most this many buckets, so memory does not grow with the call rate.
# An entry leaves the window between window * (1 - 1/_BUCKETS) and window seconds after it was recorded.
_BUCKETS = 100
# Absorbs float error in ratio * calls (0.2 * 100 must allow exactly 20).
_EPSILON = 1e-9


class RetryBudget:
    """Caps retries at `ratio` of calls over the last `window` seconds.

    Plus `min_retries_per_second` (times the window), so a quiet client can still retry.
    """

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        window: float = 10.0,
        min_retries_per_second: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if not (ratio >= 0 and math.isfinite(ratio)):
            raise ValueError(f"ratio must be >= 0, got {ratio}")
        if not (window > 0 and math.isfinite(window)):
            raise ValueError(f"window must be a positive number of seconds, got {window}")
        if not (min_retries_per_second >= 0 and math.isfinite(min_retries_per_second)):
            raise ValueError(f"min_retries_per_second must be >= 0, got {min_retries_per_second}")
        self.ratio = ratio
        self.window = window
        self.min_retries_per_second = min_retries_per_second
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._resolution = window / _BUCKETS
        self._buckets: deque[_Bucket] = deque()  # oldest first

    def record_call(self) -> None:
        """One original (non-retry) call went out."""
        self._current_bucket().calls += 1

    def try_spend(self) -> bool:
        """May one retry go out now? Records it if so."""
        snapshot = self.snapshot()
        if snapshot.retries >= snapshot.allowed:
            return False
        self._current_bucket().retries += 1
        return True

    def snapshot(self) -> RetryBudgetSnapshot:
        """Calls, retries and allowed retries in the current window."""
        self._prune(self._clock.monotonic())
        calls = sum(b.calls for b in self._buckets)
        retries = sum(b.retries for b in self._buckets)
        allowed = math.floor(self.min_retries_per_second * self.window + self.ratio * calls + _EPSILON)
        return RetryBudgetSnapshot(calls=calls, retries=retries, allowed=allowed)

    def _current_bucket(self) -> _Bucket:
        now = self._clock.monotonic()
        self._prune(now)
        if not self._buckets or now - self._buckets[-1].start >= self._resolution:
            self._buckets.append(_Bucket(now))
        return self._buckets[-1]

    def _prune(self, now: float) -> None:
        while self._buckets and now - self._buckets[0].start >= self.window:
            self._buckets.popleft()
