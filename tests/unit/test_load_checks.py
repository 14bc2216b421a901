"""The load run's judgement, pure: shares, breakers under a fault, open breakers, thresholds, regressions and
the offered rate, from synthetic timelines and statistics; and the load samples made of Locust's rows."""

from __future__ import annotations

from typing import Any

import pytest

from harness.events import EventLog
from harness.load import _checks as checks
from harness.load._profile import BreakerCheck, Regression, SharesCheck, Thresholds
from harness.load._samples import LoadSampler
from harness.load._stats import EndpointStats, HistoryRow
from harness.resilience import BreakerConfig
from harness.timeline import FaultSpan, Timeline
from harness.verdict import Verdict

ORIGIN = 1000.0
INSTANCES = ("users-1", "users-2", "users-3")
BREAKER = BreakerConfig(window_size=10, minimum_calls=5, failure_rate_threshold=0.5, open_duration=1.0)


def facts(
    breaker: BreakerConfig | None = BREAKER, weights: tuple[int, ...] = (1, 1, 2)
) -> checks.CallerFacts:
    total = sum(weights)
    return checks.CallerFacts(
        caller="orchestrator-1",
        service="users",
        instances=INSTANCES,
        expected={i: w / total for i, w in zip(INSTANCES, weights, strict=True)},
        breaker=breaker,
        attempt_timeout=0.5,
    )


def event(name: str, at: float, **fields: Any) -> dict[str, Any]:
    return {
        "ts": "2026-11-29T10:00:00+00:00",
        "mono": ORIGIN + at,
        "source": "orchestrator-1",
        "event": name,
        **fields,
    }


def attempt(at: float, instance: str, *, ok: bool = True, admitted: str = "closed") -> dict[str, Any]:
    return event(
        "client.attempt",
        at,
        service="users",
        instance=instance,
        outcome="status_2xx" if ok else "timeout",
        status=200 if ok else None,
        admitted=admitted,
        sent_at=ORIGIN + at,
        duration=0.01,
    )


def transition(at: float, old: str, new: str, instance: str = "users-2") -> dict[str, Any]:
    return event(
        "client.breaker_transition", at, service="users", instance=instance, from_state=old, to_state=new
    )


def timeline(records: list[dict[str, Any]], end: float = 20.0) -> Timeline:
    return Timeline.model_validate(
        {
            "origin": ORIGIN,
            "origin_wall": "2026-11-29T10:00:00+00:00",
            "end": end,
            "events": sorted(records, key=lambda r: r["mono"]),
        }
    )


def weighted(
    start: float, end: float, *, skip: str | None = None, per_second: int = 80
) -> list[dict[str, Any]]:
    """Attempts in the pattern 1:1:2 (users-3 twice), ``per_second``; those to ``skip`` go to users-3."""
    pattern = ("users-1", "users-3", "users-2", "users-3")
    records = []
    count = int((end - start) * per_second)
    for n in range(count):
        instance = pattern[n % 4]
        records.append(attempt(start + n / per_second, "users-3" if instance == skip else instance))
    return records


FAULT = FaultSpan("slow-users-2", "latency", "users-2", "latency latency=3000 on users-2", 4.0, 10.0)
LOAD = checks.LoadWindow(0.0, 20.0)


def a_breaker_that_works() -> list[dict[str, Any]]:
    """Before 4 s: 1:1:2. From 4 s, users-2 times out; 5 failures open its breaker at 4.5; one probe a second
    fails until the fault ends at 10; the probe at 10.6 closes it; then 1:1:2 again."""
    records = weighted(0.0, 4.0)
    records += [attempt(4.0 + n * 0.1, "users-2", ok=False) for n in range(5)]
    records += [transition(4.5, "closed", "open")]
    records += weighted(4.5, 10.6, skip="users-2")
    for at in (5.5, 7.0, 8.5):
        records += [
            transition(at, "open", "half_open"),
            attempt(at + 0.01, "users-2", ok=False, admitted="half_open"),
            transition(at + 0.5, "half_open", "open"),
        ]
    records += [
        transition(10.5, "open", "half_open"),
        attempt(10.51, "users-2", admitted="half_open"),
        transition(10.6, "half_open", "closed"),
    ]
    records += weighted(10.6, 20.0)
    return records


@pytest.mark.behaviour("load.shares")
class TestShares:
    def test_shares_by_the_weights_hold(self) -> None:
        """1:1:2 attempts against 1:1:2 weights: every instance within a point of its share."""
        section = checks.shares_section(
            timeline(weighted(0, 10)), facts(), SharesCheck(), checks.LoadWindow(0, 10)
        )
        assert section.holds, [f.line() for f in section.figures]

    def test_shares_that_ignore_the_weights_fail_by_their_distance(self) -> None:
        """Equal thirds against 1:1:2: users-3 is 16.7 points short, 11.7 beyond a 5-point tolerance."""
        records = [attempt(n / 30, INSTANCES[n % 3]) for n in range(300)]
        section = checks.shares_section(timeline(records), facts(), SharesCheck(), checks.LoadWindow(0, 10))
        [line] = [line for line in checks.failures([section]) if "users-3" in line]
        assert "users-3 share, off its weight's share: 0.1667 (bound <= 0.05) FAILED by 0.1167" in line

    def test_too_few_attempts_prove_nothing(self) -> None:
        """Too few attempts to judge shares by: inconclusive with the figure, never a deviation."""
        records = weighted(0, 0.25)
        section = checks.shares_section(timeline(records), facts(), SharesCheck(), checks.LoadWindow(0, 10))
        assert section.verdict is Verdict.INCONCLUSIVE
        assert checks.failures([section]) == []
        assert checks.insufficient([section]) == [
            "attempts by orchestrator-1 to users: 20 (bound >= 30) TOO THIN; from 0.00 s to 10.00 s"
        ]


@pytest.mark.behaviour("load.breaker_under_fault")
class TestBreakerUnderAFault:
    def test_a_breaker_that_opens_probes_and_closes_holds_every_figure(self) -> None:
        section = checks.breaker_section(
            timeline(a_breaker_that_works()), facts(), BreakerCheck(), FAULT, LOAD
        )
        assert section.holds, [f.line() for f in section.figures]
        share = next(f for f in section.figures if f.name == "users-2 share during the fault / before")
        assert share.measured is not None
        assert share.measured < 0.05

    def test_without_a_breaker_the_slow_instance_keeps_its_share_and_every_breaker_figure_fails(self) -> None:
        records = weighted(0.0, 4.0) + [
            {**a, "outcome": "timeout", "status": None} if a["instance"] == "users-2" else a
            for a in weighted(4.0, 10.0)
        ]
        records += weighted(10.0, 20.0)
        section = checks.breaker_section(timeline(records), facts(breaker=None), BreakerCheck(), FAULT, LOAD)
        lines = checks.failures([section])
        assert any(
            "breaker opened during the fault: none" in line and "breaker = false" in line for line in lines
        )
        [share] = [line for line in lines if "users-2 share during the fault / before" in line]
        assert ": 1 (bound <= 0.05) FAILED by 0.95" in share

    def test_the_others_not_absorbing_the_load_fails(self) -> None:
        """The breaker opens, but users-1 and users-3 get no more than before: half the calls are lost."""
        records = [*weighted(0.0, 4.0), transition(4.0, "closed", "open")]
        records += [a for a in weighted(4.0, 10.0) if a["instance"] != "users-2"][::2]
        records += [
            transition(10.0, "open", "half_open"),
            attempt(10.01, "users-2", admitted="half_open"),
            transition(10.02, "half_open", "closed"),
            *weighted(10.02, 20.0),
        ]
        section = checks.breaker_section(timeline(records), facts(), BreakerCheck(), FAULT, LOAD)
        [absorb] = [line for line in checks.failures([section]) if "absorb" in line]
        assert "(bound >= 0.8) FAILED" in absorb

    def test_shares_not_back_after_recovery_fail(self) -> None:
        records = a_breaker_that_works()
        records = [
            r
            for r in records
            if not (r["event"] == "client.attempt" and r["mono"] > ORIGIN + 15 and r["instance"] == "users-2")
        ]
        section = checks.breaker_section(timeline(records), facts(), BreakerCheck(), FAULT, LOAD)
        assert any("users-2 share 5 s after the fault" in line for line in checks.failures([section]))


@pytest.mark.behaviour("load.open_breaker_calls")
class TestOpenBreakers:
    def test_a_call_while_open_and_a_second_probe_fail(self) -> None:
        records = [
            *a_breaker_that_works(),
            attempt(6.2, "users-2"),  # OPEN again from 6.0 to 7.0: a leak
            attempt(7.02, "users-2", ok=False, admitted="half_open"),  # a second probe from 7.0
        ]
        section = checks.open_breaker_section(timeline(records), facts(), LOAD)
        lines = checks.failures([section])
        assert any("calls to users-2 while OPEN: 1 (bound <= 0) FAILED by 1" in line for line in lines), lines
        assert any("most probes to users-2 in one HALF_OPEN period: 2 (bound <= 1)" in line for line in lines)

    def test_without_a_breaker_there_is_nothing_to_judge_and_it_says_so(self) -> None:
        section = checks.open_breaker_section(timeline(weighted(0, 10)), facts(breaker=None), LOAD)
        assert not section.holds
        assert "breaker = false" in checks.failures([section])[0]


def stats(requests: int = 1000, failures: int = 0, rate: float = 50.0, p50: float = 20.0) -> EndpointStats:
    return EndpointStats(
        method="",
        name="Aggregated",
        requests=requests,
        failures=failures,
        average_ms=p50,
        min_ms=1.0,
        max_ms=300.0,
        rate=rate,
        seconds=requests / rate,
        start_wall=0.0,
        percentiles_ms={"50%": p50, "95%": p50 * 3, "99%": p50 * 5},
    )


@pytest.mark.behaviour("load.thresholds")
class TestThresholdsAndRates:
    def test_each_declared_bound_is_judged_and_the_rest_shown(self) -> None:
        section = checks.threshold_section(
            Thresholds(failure_ratio=0.01, p95_ms=50, achieved_ratio=0.95), stats(failures=20), offered=60.0
        )
        lines = checks.failures([section])
        assert any(
            line.startswith("Thresholds: failure ratio: 0.02 (bound <= 0.01) FAILED by 0.01")
            for line in lines
        )
        assert any("p95 latency: 60 ms (bound <= 50 ms) FAILED by 10 ms" in line for line in lines)
        assert any("achieved / offered rate: 0.8333 (bound >= 0.95) FAILED" in line for line in lines)
        shown = {f.name for f in section.figures}
        assert {"p50 latency", "p99 latency", "offered rate", "achieved rate"} <= shown

    def test_the_offered_rate_is_time_weighted(self) -> None:
        """10 users for 4 s and 20 for 6 s at 2 req/s each: 32 req/s."""
        assert checks.offered_rate(2.0, [(4.0, 10), (6.0, 20)]) == pytest.approx(32.0)
        assert checks.offered_rate(None, [(4.0, 10)]) is None

    @pytest.mark.behaviour("load.baseline")
    def test_regressions_against_a_baseline(self) -> None:
        section = checks.regression_section(
            stats(p50=30.0, rate=30.0), stats(), Regression(tolerance=0.25), "b"
        )
        lines = checks.failures([section])
        assert any(
            "p50 latency against the baseline's 20 ms: 30 ms (bound <= 26 ms)" in line for line in lines
        )
        assert any("achieved rate against the baseline's 50.00 req/s" in line for line in lines)
        assert checks.regression_section(stats(p50=24.0), stats(), Regression(tolerance=0.25), "b").holds


@pytest.mark.behaviour("load.thresholds")
class TestLoadSamples:
    def row(self, second: int, requests: int, users: int = 10) -> HistoryRow:
        return HistoryRow(
            timestamp=second, users=users, requests=requests, failures=0, p50_ms=5.0, p95_ms=9.0, p99_ms=12.0
        )

    def test_one_sample_per_history_row_even_one_written_as_the_load_starts(self) -> None:
        """Rows at 100 (the start, no request yet), 101 and 102: three samples, rates from the counts."""
        events = EventLog("harness-load")
        sampler = LoadSampler(events, clock=Clock(99.0, then=200.0))
        sampler.started(100.4 - sampler.offset)
        sampler.add([self.row(100, 0, users=0), self.row(101, 30), self.row(102, 70)])
        samples = events.of_type("load.sample")
        assert [s["users"] for s in samples] == [0, 10, 10]
        assert [s["rate"] for s in samples] == [0.0, 30.0, 40.0]
        assert samples[1]["mono"] == pytest.approx(101.5 - sampler.offset)

    def test_a_distributed_run_takes_its_rate_over_two_rows(self) -> None:
        events = EventLog("harness-load")
        sampler = LoadSampler(events, span=2, clock=Clock(99.0, then=200.0))
        sampler.started(99.5 - sampler.offset)
        sampler.add([self.row(100, 0), self.row(101, 60), self.row(102, 60), self.row(103, 120)])
        assert [s["rate"] for s in events.of_type("load.sample")] == [0.0, 30.0, 30.0, 30.0]

    def test_a_row_lands_between_the_samplers_making_and_its_reading(self) -> None:
        """Locust wrote row 100 after the sampler was made at 100.7, and row 101 was read at 101.2: the
        middle of their seconds (100.5, 101.5) falls outside the run's window; they sit at 100.7 and 101.2."""
        events = EventLog("harness-load")
        clock = Clock(100.7, then=100.9)
        sampler = LoadSampler(events, clock=clock)
        sampler.add([self.row(100, 0, users=0)])
        clock.now = 101.2
        sampler.add([self.row(101, 30)])
        walls = [s["mono"] + sampler.offset for s in events.of_type("load.sample")]
        assert walls == [pytest.approx(100.7), pytest.approx(101.2)]


class Clock:
    """A wall clock that reads ``first`` once (the sampler's making), then ``now``."""

    def __init__(self, first: float, *, then: float) -> None:
        self.readings = iter([first])
        self.now = then

    def __call__(self) -> float:
        return next(self.readings, self.now)
