"""The typed timeline: event files read back as typed events, merged in time order; breaker spans and
fault windows as the probes and the report see them; breaker conformance judged from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.checks._breaker_conformance import breaker_conformance, failures_to_open
from harness.events import EventLog
from harness.resilience import BreakerConfig
from harness.timeline import (
    BreakerTransition,
    CallAttempt,
    OtherEvent,
    RegistryChange,
    Timeline,
    build_timeline,
)

ORIGIN = 1000.0
CONFIG = BreakerConfig.consecutive_failures(3, 0.5, half_open_calls=2)


def event(name: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"ts": "2026-11-29T10:00:00+00:00", "mono": ORIGIN + at, "source": "test", "event": name, **fields}


def attempt(at: float, status: int | None = 200, admitted: str = "closed") -> dict[str, Any]:
    outcome = "timeout" if status is None else f"status_{status // 100}xx"
    return event("client.attempt", at, service="users", instance="users-2", outcome=outcome, status=status,
                 admitted=admitted, sent_at=ORIGIN + at, duration=0.01)  # fmt: skip


def transition(at: float, old: str, new: str) -> dict[str, Any]:
    return event("client.breaker_transition", at, service="users", instance="users-2", from_state=old,
                 to_state=new, reason="")  # fmt: skip


def timeline(*records: dict[str, Any], end: float = 10.0) -> Timeline:
    return Timeline.model_validate({"origin": ORIGIN, "origin_wall": "2026-11-29T10:00:00+00:00", "end": end,
                                    "events": sorted(records, key=lambda r: r["mono"])})  # fmt: skip


def textbook() -> list[dict[str, Any]]:
    """A fault from t=1 to t=3: three failures open the breaker; a failed probe round while the fault
    lasts; after it, exactly two probes close it."""
    return [
        attempt(0.5), attempt(1.1, None), attempt(1.2, None), attempt(1.3, None),
        transition(1.31, "closed", "open"),
        transition(1.81, "open", "half_open"), attempt(1.85, None, "half_open"),
        transition(1.86, "half_open", "open"),
        transition(3.2, "open", "half_open"), attempt(3.25, 200, "half_open"), attempt(3.3, 200, "half_open"),
        transition(3.31, "half_open", "closed"), attempt(3.5),
    ]  # fmt: skip


@pytest.mark.behaviour("harness.timeline")
class TestReading:
    def test_event_files_merge_in_monotonic_order_with_typed_kinds(self, tmp_path: Path) -> None:
        """Two processes' files become one ordered list; known kinds are typed, unknown ones kept."""
        first, second = EventLog("users-1", tmp_path / "a.jsonl"), EventLog("registry", tmp_path / "b.jsonl")
        first.emit("client.breaker_transition", service="users", instance="users-2", from_state="closed",
                   to_state="open", reason="3 failures")  # fmt: skip
        second.emit(
            "registry.evicted", instance_id="users-2", service="users", reason="ttl", status="critical"
        )
        first.emit("something.new", detail=1)
        first.close()
        second.close()
        with (tmp_path / "a.jsonl").open("a") as torn:
            torn.write('{"torn": ')  # a writer killed mid-line
        merged = build_timeline([tmp_path])
        kinds = [type(e) for e in merged.events]
        assert kinds == [BreakerTransition, RegistryChange, OtherEvent]
        assert merged.of(RegistryChange)[0].change == "evicted"
        assert isinstance(merged.events[2], OtherEvent)
        assert merged.events[2].fields == {"detail": 1}
        assert merged.events[0].mono <= merged.events[1].mono <= merged.events[2].mono

    def test_a_timeline_survives_a_round_trip_through_its_file(self, tmp_path: Path) -> None:
        original = timeline(*textbook(), event("fault.start", 1.0, window="w1", kind="latency",
                                               instance="users-2", fault="latency on users-2"))  # fmt: skip
        original.save(tmp_path / "timeline.json")
        loaded = Timeline.load(tmp_path / "timeline.json")
        assert loaded == original
        assert json.loads((tmp_path / "timeline.json").read_text())["schema_version"] == 1

    def test_breaker_spans_and_fault_windows(self) -> None:
        start = event("fault.start", 1.0, window="w1", kind="timeout", instance="users-2", fault="timeout")
        end = event("fault.end", 3.0, window="w1", kind="timeout", instance="users-2")
        line = timeline(*textbook(), start, end)
        spans = [
            (s.label, round(s.start, 2), round(s.end, 2)) for s in line.breaker_spans("users", "users-2")
        ]
        assert spans == [("closed", 0.0, 1.31), ("open", 1.31, 1.81), ("half_open", 1.81, 1.86),
                         ("open", 1.86, 3.2), ("half_open", 3.2, 3.31), ("closed", 3.31, 10.0)]  # fmt: skip
        [fault] = line.faults()
        assert (fault.instance, round(fault.start, 2), round(fault.end, 2)) == ("users-2", 1.0, 3.0)
        assert len(line.attempts("users", "users-2")) == 8


@pytest.mark.behaviour("harness.timeline", "breaker.transition_events")
class TestConformance:
    def judge(self, records: list[dict[str, Any]]) -> dict[str, tuple[float | None, bool]]:
        result = breaker_conformance(timeline(*records), service="users", instance="users-2", fault_start=1.0,
                                     fault_end=3.0, config=CONFIG, probe_round=0.5)  # fmt: skip
        for figure in result.figures:
            print(figure.line())
        return {f.name: (f.measured, f.holds) for f in result.figures}

    def test_a_textbook_breaker_conforms(self) -> None:
        """Opens after the failures its window needs, no call while OPEN, probes within bounds, closes in
        time."""
        figures = self.judge(textbook())
        assert all(holds for _, holds in figures.values()), figures
        assert figures["failed calls before OPEN"][0] == 3
        assert figures["seconds from fault end to CLOSED"][0] == pytest.approx(0.31, abs=1e-6)
        assert figures["probes in HALF_OPEN at 3.20s (closed)"][0] == 2

    @pytest.mark.parametrize(
        ("change", "name"),
        [
            pytest.param(lambda r: r.append(attempt(1.5, None)), "calls reaching the instance while OPEN",
                         id="call-while-open"),
            pytest.param(lambda r: r.append(attempt(3.28, 200, "half_open")),
                         "probes in HALF_OPEN at 3.20s (closed)", id="extra-probe"),
            pytest.param(lambda r: r.insert(1, attempt(1.05, None)), "failed calls before OPEN",
                         id="opens-late"),
            pytest.param(lambda r: r.__setitem__(11, transition(4.2, "half_open", "closed")),
                         "seconds from fault end to CLOSED", id="closes-late"),
            pytest.param(lambda r: r.__setitem__(4, transition(1.31, "closed", "closed")),
                         "failed calls before OPEN", id="never-opens"),
        ],
    )  # fmt: skip
    def test_each_broken_promise_fails_its_figure(self, change: Any, name: str) -> None:
        records = textbook()
        change(records)
        measured, holds = self.judge(records)[name]
        assert not holds, (name, measured)

    def test_the_bound_on_failures_is_what_the_window_needs(self) -> None:
        assert failures_to_open(BreakerConfig.consecutive_failures(5, 1.0)) == 5
        assert (
            failures_to_open(BreakerConfig(window_size=20, minimum_calls=10, failure_rate_threshold=0.5))
            == 10
        )
        assert (
            failures_to_open(BreakerConfig(window_size=20, minimum_calls=4, failure_rate_threshold=0.6)) == 12
        )


@pytest.mark.behaviour("harness.timeline")
def test_calls_are_counted_only_towards_their_instance() -> None:
    line = timeline(attempt(0.1), {**attempt(0.2), "instance": "users-1"})
    assert [a.instance for a in line.attempts("users", "users-1")] == ["users-1"]
    assert isinstance(line.events[0], CallAttempt)


def test_a_half_open_period_of_an_earlier_fault_is_not_judged_again() -> None:
    """On a shared stack a later fault's conformance ignores the breaker periods of an earlier one, even
    when that one's attempts are no longer on the timeline."""
    earlier = [transition(0.2, "closed", "open"), transition(0.4, "open", "half_open"),
               transition(0.5, "half_open", "closed")]  # fmt: skip
    records = [
        r for r in textbook() if r["event"] == "client.breaker_transition" or r["mono"] >= ORIGIN + 1.0
    ]
    result = breaker_conformance(timeline(*earlier, *records), service="users", instance="users-2",
                                 fault_start=1.0, fault_end=3.0, config=CONFIG, probe_round=0.5)  # fmt: skip
    assert [f.line() for f in result.figures if not f.holds] == []
    assert not any("0.40s" in f.name for f in result.figures)
