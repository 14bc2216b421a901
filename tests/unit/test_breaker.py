"""The circuit breaker on a manual clock: opening, rejecting, probing, closing; and a model-based check."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from harness.resilience import (
    BreakerConfig,
    BreakerOpen,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    ManualClock,
    Permit,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(config: BreakerConfig, clock: ManualClock | None = None) -> tuple[CircuitBreaker, ManualClock]:
    clock = clock if clock is not None else ManualClock(100.0)
    return CircuitBreaker("users-1", config, clock=clock), clock


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.acquire(), 0.0)


def succeed(breaker: CircuitBreaker, times: int = 1, duration: float = 0.0) -> None:
    for _ in range(times):
        breaker.record_success(breaker.acquire(), duration)


def opened(open_duration: float = 5.0, half_open_calls: int = 1) -> tuple[CircuitBreaker, ManualClock]:
    breaker, clock = make(
        BreakerConfig.consecutive_failures(2, open_duration, half_open_calls=half_open_calls)
    )
    fail(breaker, 2)
    assert breaker.state is OPEN
    return breaker, clock


def half_opened(half_open_calls: int = 1) -> tuple[CircuitBreaker, ManualClock]:
    breaker, clock = opened(5.0, half_open_calls)
    clock.advance(5.0)
    assert breaker.state is HALF_OPEN
    return breaker, clock


@pytest.mark.behaviour("breaker.opens")
class TestOpening:
    def test_opens_at_minimum_calls_when_failure_rate_reaches_threshold(self) -> None:
        """With minimum_calls 10 and threshold 0.5, the 10th outcome (5 failures) opens the breaker."""
        breaker, _ = make(BreakerConfig(window_size=20, minimum_calls=10, failure_rate_threshold=0.5))
        succeed(breaker, 5)
        fail(breaker, 4)
        assert breaker.state is CLOSED
        fail(breaker)
        assert breaker.state is OPEN

    def test_does_not_open_before_minimum_calls(self) -> None:
        """Nine failures out of nine are no verdict when minimum_calls is 10."""
        breaker, _ = make(BreakerConfig(window_size=20, minimum_calls=10))
        fail(breaker, 9)
        assert breaker.state is CLOSED
        assert breaker.snapshot().failure_rate == 1.0

    def test_stays_closed_below_threshold(self) -> None:
        """A failure rate under the threshold keeps the breaker closed however many calls go by."""
        breaker, _ = make(BreakerConfig(window_size=10, minimum_calls=10, failure_rate_threshold=0.5))
        for _ in range(30):
            succeed(breaker)
            fail(breaker)
            succeed(breaker)
        assert breaker.state is CLOSED

    def test_count_window_keeps_only_the_last_outcomes(self) -> None:
        """Old outcomes fall out of a count window, so old failures stop counting."""
        breaker, _ = make(BreakerConfig(window_size=4, minimum_calls=4, failure_rate_threshold=0.75))
        fail(breaker, 2)
        succeed(breaker, 4)
        fail(breaker, 2)
        assert breaker.state is CLOSED
        assert breaker.snapshot().calls_in_window == 4
        assert breaker.snapshot().failure_rate == 0.5

    @pytest.mark.behaviour("breaker.slow_calls")
    def test_slow_call_rate_opens(self) -> None:
        """Successful but slow calls open the breaker once their rate reaches the slow-call threshold."""
        config = BreakerConfig(
            minimum_calls=4, window_size=4, slow_call_duration=1.0, slow_call_rate_threshold=0.75
        )
        breaker, _ = make(config)
        succeed(breaker, 1, duration=0.1)
        succeed(breaker, 2, duration=1.0)
        assert breaker.state is CLOSED
        assert breaker.snapshot().failure_rate == 0.0
        succeed(breaker, 1, duration=3.0)
        assert breaker.state is OPEN

    @pytest.mark.behaviour("breaker.slow_calls")
    def test_slow_calls_are_ignored_when_tracking_is_off(self) -> None:
        """Without slow_call_duration, a slow success is just a success."""
        breaker, _ = make(BreakerConfig(minimum_calls=2, window_size=2))
        succeed(breaker, 5, duration=1000.0)
        assert breaker.state is CLOSED

    def test_duration_is_measured_with_the_clock_when_not_given(self) -> None:
        """record_success without a duration measures from the permit's start on the breaker's clock."""
        breaker, clock = make(BreakerConfig(minimum_calls=1, window_size=1, slow_call_duration=2.0))
        permit = breaker.acquire()
        clock.advance(2.5)
        breaker.record_success(permit)
        assert breaker.state is OPEN

    def test_time_window_forgets_old_outcomes(self) -> None:
        """In a time window, outcomes older than window_size seconds no longer count."""
        config = BreakerConfig(
            window_type="time", window_size=10, minimum_calls=3, failure_rate_threshold=1.0
        )
        breaker, clock = make(config)
        fail(breaker, 2)
        clock.advance(9.0)
        assert breaker.snapshot().calls_in_window == 2
        clock.advance(1.0)
        assert breaker.snapshot().calls_in_window == 0
        fail(breaker)
        assert breaker.state is CLOSED
        fail(breaker, 2)
        assert breaker.state is OPEN

    def test_time_window_memory_is_bounded(self) -> None:
        """Many calls spread over time occupy a bounded number of buckets, yet all are counted."""
        config = BreakerConfig(window_type="time", window_size=10, minimum_calls=10_000)
        breaker, clock = make(config)
        for _ in range(5000):
            succeed(breaker)
            clock.advance(0.001)
        assert breaker.snapshot().calls_in_window == 5000
        assert len(breaker._window._buckets) <= 101  # type: ignore[union-attr]


@pytest.mark.behaviour("breaker.opens")
class TestConsecutiveFailures:
    def test_opens_after_exactly_n_failures(self) -> None:
        """consecutive_failures(3, ...) opens on the third failure in a row, not before."""
        breaker, _ = make(BreakerConfig.consecutive_failures(3, 5.0))
        fail(breaker, 2)
        assert breaker.state is CLOSED
        fail(breaker)
        assert breaker.state is OPEN

    def test_a_success_breaks_the_run(self) -> None:
        """N-1 failures, then a success, then N-1 failures do not open; the Nth in a row does."""
        breaker, _ = make(BreakerConfig.consecutive_failures(3, 5.0))
        fail(breaker, 2)
        succeed(breaker)
        fail(breaker, 2)
        assert breaker.state is CLOSED
        fail(breaker)
        assert breaker.state is OPEN

    def test_is_a_plain_configuration(self) -> None:
        """The preset is a count window of N with minimum_calls N and threshold 1.0."""
        config = BreakerConfig.consecutive_failures(4, 7.5, half_open_calls=2)
        assert config == BreakerConfig(
            window_size=4,
            window_type="count",
            minimum_calls=4,
            failure_rate_threshold=1.0,
            open_duration=7.5,
            half_open_calls=2,
        )


@pytest.mark.behaviour("breaker.rejects_while_open")
class TestOpen:
    def test_rejects_without_time_passing(self) -> None:
        """An open breaker rejects every acquire with BreakerOpen carrying retry_in and the instance."""
        breaker, clock = opened(open_duration=5.0)
        clock.advance(2.0)
        for _ in range(100):
            with pytest.raises(BreakerOpen) as caught:
                breaker.acquire()
        assert caught.value.retry_in == pytest.approx(3.0)
        assert caught.value.instance == "users-1"
        assert "users-1" in str(caught.value)
        assert not breaker.available()
        assert breaker.retry_in() == pytest.approx(3.0)

    def test_half_opens_after_open_duration(self) -> None:
        """The first read after open_duration finds the breaker HALF_OPEN; just before, still OPEN."""
        breaker, clock = opened(open_duration=5.0)
        clock.advance(4.999)
        assert breaker.state is OPEN
        clock.advance(0.001)
        assert breaker.available()
        assert breaker.state is HALF_OPEN
        assert breaker.retry_in() == 0.0

    def test_open_window_is_cleared(self) -> None:
        """Opening clears the window, so snapshot figures start again from zero."""
        breaker, _ = opened()
        snapshot = breaker.snapshot()
        assert (snapshot.calls_in_window, snapshot.failure_rate) == (0, 0.0)


@pytest.mark.behaviour("breaker.half_open_probes")
class TestHalfOpen:
    def test_admits_exactly_half_open_calls(self) -> None:
        """HALF_OPEN hands out half_open_calls permits and rejects the next with retry_in 0."""
        breaker, _ = half_opened(half_open_calls=3)
        permits = [breaker.acquire() for _ in range(3)]
        assert all(p.state is HALF_OPEN for p in permits)
        assert not breaker.available()
        with pytest.raises(BreakerOpen) as caught:
            breaker.acquire()
        assert caught.value.retry_in == 0.0
        assert breaker.snapshot().half_open_in_flight == 3

    async def test_admits_exactly_half_open_calls_under_concurrency(self) -> None:
        """Fifty coroutines racing for probes get exactly half_open_calls permits between them."""
        breaker, _ = half_opened(half_open_calls=3)
        start = asyncio.Event()

        async def attempt() -> Permit | None:
            await start.wait()
            try:
                return breaker.acquire()
            except BreakerOpen:
                return None

        tasks = [asyncio.ensure_future(attempt()) for _ in range(50)]
        await asyncio.sleep(0)  # let every task reach start.wait()
        start.set()
        results = await asyncio.gather(*tasks)
        assert sum(r is not None for r in results) == 3

    @pytest.mark.behaviour("breaker.closes")
    def test_all_probes_succeed_closes(self) -> None:
        """When every probe succeeds the breaker closes with a fresh window."""
        breaker, _ = half_opened(half_open_calls=2)
        first, second = breaker.acquire(), breaker.acquire()
        breaker.record_success(first, 0.0)
        assert breaker.state is HALF_OPEN
        breaker.record_success(second, 0.0)
        assert breaker.state is CLOSED
        assert breaker.snapshot().calls_in_window == 0

    def test_a_successful_probe_keeps_its_slot(self) -> None:
        """A probe that succeeded does not make room for another one."""
        breaker, _ = half_opened(half_open_calls=2)
        breaker.record_success(breaker.acquire(), 0.0)
        breaker.acquire()
        with pytest.raises(BreakerOpen):
            breaker.acquire()

    @pytest.mark.behaviour("breaker.reopens")
    def test_one_failed_probe_reopens(self) -> None:
        """The first failed probe sends the breaker back to OPEN for a fresh open_duration."""
        breaker, clock = half_opened(half_open_calls=3)
        first, second = breaker.acquire(), breaker.acquire()
        breaker.record_success(first, 0.0)
        clock.advance(1.0)
        breaker.record_failure(second, 0.0)
        assert breaker.state is OPEN
        assert breaker.retry_in() == pytest.approx(5.0)

    @pytest.mark.behaviour("breaker.slow_calls", "breaker.reopens")
    def test_a_slow_probe_reopens_when_slow_tracking_is_on(self) -> None:
        """With slow-call tracking, a slow successful probe counts against the instance."""
        config = BreakerConfig(window_size=1, minimum_calls=1, slow_call_duration=1.0, open_duration=5.0)
        breaker, clock = make(config)
        fail(breaker)
        clock.advance(5.0)
        breaker.record_success(breaker.acquire(), 1.5)
        assert breaker.state is OPEN

    def test_release_frees_a_probe_slot(self) -> None:
        """A released probe (cancelled call) frees its slot and decides nothing."""
        breaker, _ = half_opened(half_open_calls=1)
        permit = breaker.acquire()
        assert not breaker.available()
        breaker.release(permit)
        assert breaker.state is HALF_OPEN
        assert breaker.available()
        breaker.record_success(breaker.acquire(), 0.0)
        assert breaker.state is CLOSED

    def test_settling_a_probe_twice_counts_once(self) -> None:
        """Releasing the same permit twice frees one slot only."""
        breaker, _ = half_opened(half_open_calls=2)
        first = breaker.acquire()
        breaker.acquire()
        breaker.release(first)
        breaker.release(first)
        breaker.acquire()
        with pytest.raises(BreakerOpen):
            breaker.acquire()


@pytest.mark.behaviour("breaker.half_open_probes")
class TestGenerations:
    def test_stale_success_cannot_close_a_half_open_breaker(self) -> None:
        """A call admitted while CLOSED that ends (slowly) during HALF_OPEN is ignored."""
        breaker, clock = make(BreakerConfig.consecutive_failures(2, 5.0))
        straggler = breaker.acquire()
        fail(breaker, 2)
        clock.advance(5.0)
        assert breaker.state is HALF_OPEN
        breaker.record_success(straggler)
        assert breaker.state is HALF_OPEN
        assert breaker.available()

    def test_stale_failure_cannot_reopen(self) -> None:
        """A call admitted before the breaker opened cannot fail a HALF_OPEN breaker."""
        breaker, clock = make(BreakerConfig.consecutive_failures(2, 5.0))
        straggler = breaker.acquire()
        fail(breaker, 2)
        clock.advance(5.0)
        probe = breaker.acquire()
        breaker.record_failure(straggler)
        assert breaker.state is HALF_OPEN
        breaker.record_success(probe)
        assert breaker.state is CLOSED

    def test_stale_release_frees_nothing(self) -> None:
        """Releasing a permit from an older generation does not free a probe slot."""
        breaker, clock = make(BreakerConfig.consecutive_failures(2, 5.0))
        straggler = breaker.acquire()
        fail(breaker, 2)
        clock.advance(5.0)
        breaker.acquire()
        breaker.release(straggler)
        assert not breaker.available()

    def test_permits_carry_their_generation(self) -> None:
        """Each transition starts a new generation."""
        breaker, clock = make(BreakerConfig.consecutive_failures(1, 5.0))
        before = breaker.acquire()
        breaker.record_failure(before)
        clock.advance(5.0)
        probe = breaker.acquire()
        assert probe.generation == before.generation + 2
        assert (before.state, probe.state) == (CLOSED, HALF_OPEN)


@pytest.mark.behaviour("breaker.transition_events")
class TestListeners:
    def test_receive_every_transition_with_clock_time_and_reason(self) -> None:
        """Listeners get each transition in order, stamped with the breaker clock and a readable reason."""
        clock = ManualClock(50.0)
        seen: list[BreakerTransition] = []
        config = BreakerConfig(window_size=10, minimum_calls=5, failure_rate_threshold=0.6, half_open_calls=2)
        breaker = CircuitBreaker("users-2", config, clock=clock, listeners=[seen.append])
        succeed(breaker, 2)
        fail(breaker, 3)
        clock.advance(5.0)
        assert breaker.state is HALF_OPEN
        breaker.record_failure(breaker.acquire(), 0.0)
        clock.advance(6.0)
        probes = [breaker.acquire(), breaker.acquire()]
        clock.advance(0.5)
        for probe in probes:
            breaker.record_success(probe)
        assert [(t.breaker, t.from_state, t.to_state, t.at, t.reason) for t in seen] == [
            ("users-2", CLOSED, OPEN, 50.0, "failure rate 0.60 >= 0.60 over 5 calls"),
            ("users-2", OPEN, HALF_OPEN, 55.0, "open for 5.0s elapsed"),
            ("users-2", HALF_OPEN, OPEN, 55.0, "probe failed"),
            ("users-2", OPEN, HALF_OPEN, 61.0, "open for 5.0s elapsed"),
            ("users-2", HALF_OPEN, CLOSED, 61.5, "2 probes succeeded"),
        ]

    def test_slow_call_reason_names_the_rate(self) -> None:
        """Opening on slow calls says so."""
        seen: list[BreakerTransition] = []
        config = BreakerConfig(window_size=2, minimum_calls=2, slow_call_duration=1.0)
        breaker = CircuitBreaker("b", config, clock=ManualClock(), listeners=[seen.append])
        succeed(breaker, 2, duration=1.0)
        assert seen[0].reason.startswith("slow-call rate 1.00 >= 1.00 over 2 calls")

    def test_added_listeners_run_after_the_first_ones(self) -> None:
        """add_listener appends; every listener sees the breaker already in its new state."""
        order: list[tuple[str, BreakerState]] = []
        breaker, _ = make(BreakerConfig.consecutive_failures(1, 5.0))
        breaker.add_listener(lambda t: order.append(("first", breaker.state)))
        breaker.add_listener(lambda t: order.append(("second", t.to_state)))
        fail(breaker)
        assert order == [("first", OPEN), ("second", OPEN)]


class TestResetAndSnapshot:
    def test_reset_closes_and_reports(self) -> None:
        """reset() from OPEN goes to CLOSED with a 'reset' transition."""
        seen: list[BreakerTransition] = []
        breaker, _ = opened()
        breaker.add_listener(seen.append)
        breaker.reset()
        assert breaker.state is CLOSED
        assert [(t.to_state, t.reason) for t in seen] == [(CLOSED, "reset")]

    def test_reset_when_closed_clears_the_window_silently(self) -> None:
        """reset() while CLOSED empties the window, emits nothing, and ignores calls admitted before it."""
        seen: list[BreakerTransition] = []
        breaker, _ = make(BreakerConfig.consecutive_failures(2, 5.0))
        breaker.add_listener(seen.append)
        fail(breaker)
        in_flight = breaker.acquire()
        breaker.reset()
        assert breaker.snapshot().calls_in_window == 0
        breaker.record_failure(in_flight)
        fail(breaker)
        assert breaker.state is CLOSED
        assert seen == []

    def test_snapshot_figures(self) -> None:
        """snapshot() reports rates, calls in the window, probes in flight and retry_in."""
        config = BreakerConfig(window_size=10, minimum_calls=10, slow_call_duration=1.0)
        breaker, _ = make(config)
        succeed(breaker, 1, duration=2.0)
        succeed(breaker, 2)
        fail(breaker)
        snapshot = breaker.snapshot()
        assert snapshot.state is CLOSED
        assert (snapshot.failure_rate, snapshot.slow_call_rate, snapshot.calls_in_window) == (0.25, 0.25, 4)
        assert (snapshot.half_open_in_flight, snapshot.retry_in) == (0, 0.0)


class TestConfigValidation:
    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            pytest.param({"window_size": 0}, "window_size", id="window-size"),
            pytest.param({"window_type": "sliding"}, "window_type", id="window-type"),
            pytest.param({"minimum_calls": 0}, "minimum_calls", id="minimum-calls"),
            pytest.param(
                {"window_size": 5, "minimum_calls": 6}, "could never open", id="minimum-over-window"
            ),
            pytest.param({"failure_rate_threshold": 0.0}, "failure_rate_threshold", id="failure-zero"),
            pytest.param({"failure_rate_threshold": 1.5}, "failure_rate_threshold", id="failure-over-one"),
            pytest.param({"slow_call_rate_threshold": 0.0}, "slow_call_rate_threshold", id="slow-rate"),
            pytest.param({"slow_call_duration": 0.0}, "slow_call_duration", id="slow-duration"),
            pytest.param({"open_duration": 0.0}, "open_duration", id="open-zero"),
            pytest.param({"open_duration": float("nan")}, "open_duration", id="open-nan"),
            pytest.param({"half_open_calls": 0}, "half_open_calls", id="half-open-calls"),
        ],
    )
    def test_rejects_out_of_range_values(self, changes: dict[str, object], message: str) -> None:
        """Each out-of-range setting raises ValueError naming it."""
        with pytest.raises(ValueError, match=message):
            BreakerConfig(**changes)  # type: ignore[arg-type]

    def test_time_window_may_need_more_calls_than_its_seconds(self) -> None:
        """minimum_calls above window_size is fine for a time window (it counts seconds, not calls)."""
        assert BreakerConfig(window_type="time", window_size=5, minimum_calls=50).minimum_calls == 50


# -- model-based check --------------------------------------------------------------------------------------

Outcome = Literal["success", "failure", "release"]
Speed = Literal["fast", "slow", "measured"]


@dataclass
class Model:
    """The breaker's rules, written out plainly and independently of the implementation."""

    config: BreakerConfig
    state: BreakerState = CLOSED
    epoch: int = 0
    outcomes: list[tuple[float, bool, bool]] = field(default_factory=list)  # (time, failed, slow)
    open_until: float = 0.0
    slots_used: int = 0
    probes_ok: int = 0
    transitions: list[tuple[BreakerState, BreakerState]] = field(default_factory=list)

    def move(self, to: BreakerState, now: float) -> None:
        self.transitions.append((self.state, to))
        self.state = to
        self.epoch += 1
        self.outcomes = []
        self.slots_used = 0
        self.probes_ok = 0
        if to is OPEN:
            self.open_until = now + self.config.open_duration

    def observe(self, now: float) -> BreakerState:
        if self.state is OPEN and now >= self.open_until:
            self.move(HALF_OPEN, now)
        return self.state

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        if self.config.window_type == "count":
            return self.outcomes[-self.config.window_size :]
        return [o for o in self.outcomes if now - o[0] < self.config.window_size]

    def acquire(self, now: float) -> bool:
        state = self.observe(now)
        if state is CLOSED:
            return True
        if state is HALF_OPEN and self.slots_used < self.config.half_open_calls:
            self.slots_used += 1
            return True
        return False

    def settle(self, epoch: int, outcome: Outcome, slow: bool, now: float) -> None:
        if epoch != self.epoch:
            return
        slow = slow and self.config.slow_call_duration is not None
        if self.state is CLOSED and outcome != "release":
            self.outcomes.append((now, outcome == "failure", slow))
            window = self.window(now)
            if len(window) >= self.config.minimum_calls:
                failures = sum(1 for o in window if o[1])
                slows = sum(1 for o in window if o[2])
                too_many_failures = failures / len(window) >= self.config.failure_rate_threshold
                too_many_slow = (
                    self.config.slow_call_duration is not None
                    and slows / len(window) >= self.config.slow_call_rate_threshold
                )
                if too_many_failures or too_many_slow:
                    self.move(OPEN, now)
        elif self.state is HALF_OPEN:
            if outcome == "release":
                self.slots_used -= 1
            elif outcome == "failure" or slow:
                self.move(OPEN, now)
            else:
                self.probes_ok += 1
                if self.probes_ok == self.config.half_open_calls:
                    self.move(CLOSED, now)

    def reset(self, now: float) -> None:
        if self.state is CLOSED:
            self.epoch += 1
            self.outcomes = []
        else:
            self.move(CLOSED, now)


@st.composite
def breaker_configs(draw: st.DrawFn) -> BreakerConfig:
    window_type: Literal["count", "time"] = "count" if draw(st.booleans()) else "time"
    window_size = draw(st.integers(1, 6))
    minimum_calls = draw(st.integers(1, window_size if window_type == "count" else 6))
    return BreakerConfig(
        window_size=window_size,
        window_type=window_type,
        minimum_calls=minimum_calls,
        failure_rate_threshold=draw(st.sampled_from([0.25, 1 / 3, 0.5, 0.75, 1.0])),
        slow_call_duration=draw(st.sampled_from([None, 2.0])),
        slow_call_rate_threshold=draw(st.sampled_from([0.5, 1.0])),
        open_duration=float(draw(st.integers(1, 5))),
        half_open_calls=draw(st.integers(1, 3)),
    )


@dataclass(frozen=True)
class Held:
    permit: Permit
    epoch: int
    started_at: float


class BreakerMachine(RuleBasedStateMachine):
    """Random calls, outcomes and clock moves; after every step the breaker must agree with the model."""

    permits = Bundle("permits")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(1000.0)
        self.seen: list[BreakerTransition] = []
        self.breaker = CircuitBreaker("m", clock=self.clock, listeners=[self.seen.append])
        self.model = Model(self.breaker.config)

    @initialize(config=breaker_configs())
    def configure(self, config: BreakerConfig) -> None:
        self.breaker = CircuitBreaker("m", config, clock=self.clock, listeners=[self.seen.append])
        self.model = Model(config)

    @rule(target=permits)
    def acquire(self) -> Held | MultipleResults[Held]:
        now = self.clock.monotonic()
        if self.model.acquire(now):
            return Held(self.breaker.acquire(), self.model.epoch, now)
        with pytest.raises(BreakerOpen) as rejected:
            self.breaker.acquire()
        expected_wait = max(0.0, self.model.open_until - now) if self.model.state is OPEN else 0.0
        assert rejected.value.retry_in == expected_wait
        return multiple()

    @rule(
        held=consumes(permits),
        outcome=st.sampled_from(["success", "failure", "release"]),
        speed=st.sampled_from(["fast", "slow", "measured"]),
    )
    def settle(self, held: Held, outcome: Outcome, speed: Speed) -> None:
        now = self.clock.monotonic()
        duration = {"fast": 0.0, "slow": 2.0, "measured": now - held.started_at}[speed]
        self.model.settle(held.epoch, outcome, duration >= 2.0, now)
        if outcome == "release":
            self.breaker.release(held.permit)
        elif outcome == "success":
            self.breaker.record_success(held.permit, None if speed == "measured" else duration)
        else:
            self.breaker.record_failure(held.permit, None if speed == "measured" else duration)

    @rule(seconds=st.integers(0, 6))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def reset(self) -> None:
        self.model.reset(self.clock.monotonic())
        self.breaker.reset()

    @invariant()
    def agrees_with_model(self) -> None:
        now = self.clock.monotonic()
        expected = self.model.observe(now)
        snapshot = self.breaker.snapshot()
        assert snapshot.state is expected
        assert self.breaker.available() == (
            expected is CLOSED
            or (expected is HALF_OPEN and self.model.slots_used < self.model.config.half_open_calls)
        )
        window = self.model.window(now)
        assert snapshot.calls_in_window == len(window)
        assert snapshot.failure_rate == (sum(1 for o in window if o[1]) / len(window) if window else 0.0)
        assert snapshot.half_open_in_flight == self.model.slots_used - self.model.probes_ok
        assert snapshot.retry_in == (max(0.0, self.model.open_until - now) if expected is OPEN else 0.0)
        assert [(t.from_state, t.to_state) for t in self.seen] == self.model.transitions
        assert all(t.at <= now for t in self.seen)


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
