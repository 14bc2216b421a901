"""Retry policy, Retry-After parsing and the retry budget, with seeded randomness and a manual clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from harness.resilience import IDEMPOTENT_METHODS, ManualClock, RetryBudget, RetryPolicy, parse_retry_after

NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)


@pytest.mark.behaviour("retry.only_when_safe")
class TestRetryableRequests:
    @pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", "get", "Put"])
    def test_idempotent_methods_are_retryable(self, method: str) -> None:
        """Idempotent methods may be retried, whatever their case."""
        assert RetryPolicy().is_retryable_request(method, {})

    @pytest.mark.parametrize("method", ["POST", "PATCH", "CONNECT"])
    def test_other_methods_are_not(self, method: str) -> None:
        """POST and PATCH without an idempotency key are never retried."""
        assert not RetryPolicy().is_retryable_request(method, {"Content-Type": "application/json"})

    @pytest.mark.parametrize("header", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
    def test_idempotency_key_makes_any_method_retryable(self, header: str) -> None:
        """An idempotency key, under any spelling of the header name, makes a POST retryable."""
        assert RetryPolicy().is_retryable_request("POST", {header: "order-42"})

    def test_empty_idempotency_key_does_not_count(self) -> None:
        """A blank key cannot deduplicate anything, so it does not make a request retryable."""
        assert not RetryPolicy().is_retryable_request("POST", {"Idempotency-Key": "  "})

    def test_header_name_is_configurable(self) -> None:
        """The policy looks for its own idempotency header name."""
        policy = RetryPolicy(idempotency_header="X-Request-Id")
        assert policy.is_retryable_request("POST", {"x-request-id": "abc"})
        assert not policy.is_retryable_request("POST", {"Idempotency-Key": "abc"})

    def test_idempotent_methods_constant(self) -> None:
        """The idempotent methods are those of RFC 9110."""
        assert frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) == IDEMPOTENT_METHODS


@pytest.mark.behaviour("retry.backoff")
class TestBackoff:
    @pytest.mark.parametrize("retry_number", range(1, 11))
    def test_full_jitter_spans_zero_to_the_cap(self, retry_number: int) -> None:
        """Delays stay within [0, min(max_delay, base * 2**(n-1))] and spread over the whole range."""
        policy = RetryPolicy(base_delay=0.05, max_delay=2.0)
        cap = min(2.0, 0.05 * 2 ** (retry_number - 1))
        rng = random.Random(retry_number)
        samples = [policy.backoff(retry_number, rng) for _ in range(2000)]
        assert all(0.0 <= s <= cap for s in samples)
        assert min(samples) < 0.01 * cap
        assert max(samples) > 0.99 * cap

    def test_huge_retry_numbers_stay_at_max_delay(self) -> None:
        """A very late retry neither overflows nor exceeds max_delay."""
        policy = RetryPolicy(base_delay=0.05, max_delay=2.0)
        assert 0.0 <= policy.backoff(100_000, random.Random(0)) <= 2.0

    def test_retry_numbers_count_from_one(self) -> None:
        """Retry number 0 is a programming mistake."""
        with pytest.raises(ValueError, match="from 1"):
            RetryPolicy().backoff(0, random.Random(0))

    def test_zero_base_delay_retries_at_once(self) -> None:
        """base_delay 0 means no wait between attempts."""
        assert RetryPolicy(base_delay=0.0).backoff(3, random.Random(0)) == 0.0


@pytest.mark.behaviour("retry.retry_after")
class TestDelay:
    def test_honours_retry_after(self) -> None:
        """A Retry-After within max_retry_after replaces the backoff."""
        assert RetryPolicy().delay(1, random.Random(0), retry_after=3.0) == 3.0

    def test_refuses_a_retry_after_above_the_maximum(self) -> None:
        """A Retry-After longer than max_retry_after means: do not retry."""
        policy = RetryPolicy(max_retry_after=30.0)
        assert policy.delay(1, random.Random(0), retry_after=30.0) == 30.0
        assert policy.delay(1, random.Random(0), retry_after=30.5) is None

    def test_negative_retry_after_means_now(self) -> None:
        """A Retry-After below zero is clamped to no wait."""
        assert RetryPolicy().delay(1, random.Random(0), retry_after=-4.0) == 0.0

    def test_backoff_without_retry_after(self) -> None:
        """Without Retry-After the delay is the jittered backoff for that retry number."""
        policy = RetryPolicy()
        assert policy.delay(2, random.Random(5)) == policy.backoff(2, random.Random(5))

    def test_retry_after_ignored_when_not_honoured(self) -> None:
        """honour_retry_after=False falls back to backoff even for a very long Retry-After."""
        policy = RetryPolicy(honour_retry_after=False, max_delay=2.0)
        delay = policy.delay(1, random.Random(0), retry_after=600.0)
        assert delay is not None
        assert delay <= 2.0


@pytest.mark.behaviour("retry.retry_after")
class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            pytest.param("120", 120.0, id="integer"),
            pytest.param(" 5 ", 5.0, id="padded"),
            pytest.param("0", 0.0, id="zero"),
            pytest.param("1.5", 1.5, id="decimal"),
        ],
    )
    def test_delta_seconds(self, value: str, seconds: float) -> None:
        """Delta-seconds are read as a number of seconds."""
        assert parse_retry_after(value) == seconds

    def test_http_date(self) -> None:
        """An HTTP-date gives the seconds from `now` until then."""
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 30.0

    def test_http_date_with_unknown_zone_is_gmt(self) -> None:
        """A '-0000' zone (naive result) is read as GMT, as HTTP requires."""
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", now=NOW) == 30.0

    def test_naive_now_is_utc(self) -> None:
        """A naive `now` is taken as UTC rather than raising."""
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW.replace(tzinfo=None)) == 30.0

    def test_past_date_is_zero(self) -> None:
        """A date already past means: retry now."""
        assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=NOW) == 0.0

    def test_defaults_to_the_current_time(self) -> None:
        """Without `now`, a date is measured from the current UTC time."""
        soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        seconds = parse_retry_after(soon)
        assert seconds is not None
        assert 3500 < seconds <= 3600

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(None, id="absent"),
            pytest.param("", id="empty"),
            pytest.param("soon", id="word"),
            pytest.param("-5", id="negative"),
            pytest.param("1e3", id="exponent"),
            pytest.param("Wed, 32 Oct 2015 07:28:00 GMT", id="bad-day"),
            pytest.param("Wed, 21 Oct 99999 07:28:00 GMT", id="bad-year"),
        ],
    )
    def test_garbage_is_none(self, value: str | None) -> None:
        """Anything that is neither delta-seconds nor an HTTP-date gives None."""
        assert parse_retry_after(value, now=NOW) is None


class TestPolicyValidation:
    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            pytest.param({"max_attempts": 0}, "max_attempts", id="attempts"),
            pytest.param({"base_delay": -1.0}, "base_delay", id="negative-base"),
            pytest.param({"base_delay": 3.0, "max_delay": 2.0}, "base_delay", id="base-over-max"),
            pytest.param({"max_delay": float("inf")}, "max_delay", id="infinite-max"),
            pytest.param({"max_retry_after": -1.0}, "max_retry_after", id="retry-after"),
            pytest.param({"retry_on_status": frozenset({503, 42})}, "42", id="status"),
            pytest.param({"idempotency_header": ""}, "idempotency_header", id="header"),
        ],
    )
    def test_rejects_out_of_range_values(self, changes: dict[str, object], message: str) -> None:
        """Each out-of-range setting raises ValueError naming it."""
        with pytest.raises(ValueError, match=message):
            RetryPolicy(**changes)  # type: ignore[arg-type]

    def test_defaults(self) -> None:
        """Three attempts, retrying on 429 and the gateway errors."""
        policy = RetryPolicy()
        assert policy.max_attempts == 3
        assert policy.retry_on_status == {429, 502, 503, 504}


@pytest.mark.behaviour("retry.budget")
class TestRetryBudget:
    def test_ratio_caps_retries(self) -> None:
        """With ratio 0.2 and no minimum, 100 calls allow exactly 20 retries, then refuse."""
        budget = RetryBudget(0.2, window=10.0, min_retries_per_second=0.0, clock=ManualClock())
        for _ in range(100):
            budget.record_call()
        assert [budget.try_spend() for _ in range(21)] == [True] * 20 + [False]
        snapshot = budget.snapshot()
        assert (snapshot.calls, snapshot.retries, snapshot.allowed) == (100, 20, 20)

    def test_window_slides_with_the_clock(self) -> None:
        """Calls and retries older than the window stop counting."""
        clock = ManualClock()
        budget = RetryBudget(0.5, window=10.0, min_retries_per_second=0.0, clock=clock)
        for _ in range(10):
            budget.record_call()
        assert all(budget.try_spend() for _ in range(5))
        assert not budget.try_spend()
        clock.advance(5.0)
        for _ in range(10):
            budget.record_call()
        assert all(budget.try_spend() for _ in range(5))
        assert not budget.try_spend()
        clock.advance(5.0)  # the first ten calls and five retries leave the window
        assert budget.snapshot().calls == 10
        assert budget.snapshot().retries == 5
        assert not budget.try_spend()
        clock.advance(5.0)
        assert budget.snapshot().calls == 0
        assert not budget.try_spend()

    def test_minimum_lets_a_quiet_client_retry(self) -> None:
        """min_retries_per_second * window retries are allowed even with no calls at all."""
        clock = ManualClock()
        budget = RetryBudget(0.2, window=10.0, min_retries_per_second=0.5, clock=clock)
        assert [budget.try_spend() for _ in range(6)] == [True] * 5 + [False]
        clock.advance(10.0)
        assert budget.try_spend()

    def test_memory_is_bounded(self) -> None:
        """A steady stream of calls occupies a bounded number of buckets."""
        clock = ManualClock()
        budget = RetryBudget(0.2, window=1.0, clock=clock)
        for _ in range(10_000):
            budget.record_call()
            budget.try_spend()
            clock.advance(0.0007)
        assert len(budget._buckets) <= 101
        assert 1400 <= budget.snapshot().calls <= 1430

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            pytest.param({"ratio": -0.1}, "ratio", id="ratio"),
            pytest.param({"window": 0.0}, "window", id="window"),
            pytest.param({"min_retries_per_second": -1.0}, "min_retries_per_second", id="minimum"),
        ],
    )
    def test_rejects_out_of_range_values(self, kwargs: dict[str, float], message: str) -> None:
        """Negative ratios or minimums and empty windows are programming mistakes."""
        with pytest.raises(ValueError, match=message):
            RetryBudget(**kwargs)  # type: ignore[arg-type]
