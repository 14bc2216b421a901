"""The fault schedule: seeded draws, validation, and the runner against a recording injector and a
virtual clock (no sockets, no sleeps)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.events import EventLog
from harness.faults import (
    FaultApplier,
    FaultKind,
    FaultNotApplied,
    FaultSchedule,
    FaultSpec,
    FaultWindow,
    RandomFaults,
    ScheduleRunner,
    random_schedule,
    read_ledger,
)
from harness.faults._schedule import EXPIRY_MARGIN
from harness.verdict import ExitCode

INSTANCES = ("users-1", "users-2", "users-3", "notifications-1")


def window(name: str, start: float, end: float | None, kind: FaultKind = FaultKind.LATENCY,
           instance: str = "users-2") -> FaultWindow:  # fmt: skip
    attributes = {"latency": 100} if kind is FaultKind.LATENCY else {}
    return FaultWindow(name=name, fault=FaultSpec(kind=kind, instance=instance, attributes=attributes),
                       start=start, end=end)  # fmt: skip


class VirtualTime:
    """A clock that only moves when the runner waits."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


class Recorder:
    def __init__(self, time: VirtualTime, fail_on: str | None = None) -> None:
        self.time = time
        self.fail_on = fail_on
        self.calls: list[tuple[float, str, str]] = []
        self.expiries: dict[str, float | None] = {}

    def apply(self, w: FaultWindow, *, expires_in: float | None = None) -> bool:
        if w.name == self.fail_on:
            raise RuntimeError("instance gone")
        self.calls.append((round(self.time.now - 100.0, 6), "apply", w.name))
        self.expiries[w.name] = expires_in
        return False

    def remove(self, w: FaultWindow) -> None:
        self.calls.append((round(self.time.now - 100.0, 6), "remove", w.name))


@pytest.mark.behaviour("harness.fault_schedule")
class TestRandomSchedule:
    def test_the_same_seed_draws_the_same_schedule(self) -> None:
        """Replayable: the schedule is a function of the seed alone."""
        faults = RandomFaults(instances=INSTANCES, windows=12)
        first = random_schedule(7, 30.0, faults, kills=3, kill_instance="orchestrator-1")
        assert first == random_schedule(7, 30.0, faults, kills=3, kill_instance="orchestrator-1")
        assert first != random_schedule(8, 30.0, faults, kills=3, kill_instance="orchestrator-1")

    def test_windows_stay_inside_the_duration_and_kills_never_overlap(self) -> None:
        """Every toxic window ends by the duration; kills are spread, each restarted before the next."""
        schedule = random_schedule(3, 20.0, RandomFaults(instances=INSTANCES, windows=40), kills=5,
                                   kill_instance="orchestrator-1")  # fmt: skip
        toxics = [w for w in schedule.windows if w.fault.kind is not FaultKind.KILL]
        kills = [w for w in schedule.windows if w.fault.kind is FaultKind.KILL]
        assert len(toxics) == 40
        assert all(w.start >= 0 and w.until <= 20.0 for w in toxics)
        assert len(kills) == 5
        assert all(a.until <= b.start for a, b in itertools.pairwise(kills))
        assert [w.start for w in schedule.windows] == sorted(w.start for w in schedule.windows)

    def test_a_schedule_survives_a_round_trip_through_its_file(self, tmp_path: Path) -> None:
        schedule = random_schedule(1, 10.0, RandomFaults(instances=INSTANCES), kills=1, kill_instance="o-1")
        schedule.save(tmp_path / "schedule.json")
        assert FaultSchedule.load(tmp_path / "schedule.json") == schedule


@pytest.mark.behaviour("harness.fault_schedule")
class TestValidation:
    @pytest.mark.parametrize(
        ("windows", "message"),
        [
            pytest.param([window("a", 1, 2), window("a", 3, 4)], "names must be unique", id="same-name"),
            pytest.param([window("a", 2, 1)], "end 1.0 is not after start 2.0", id="backwards"),
            pytest.param([window("a", 0, 5, FaultKind.DOWN), window("b", 4, 6, FaultKind.DOWN)],
                         "overlap on users-2", id="two-partitions"),
            pytest.param([window("a", 0, 5, FaultKind.KILL), window("b", 1, None, FaultKind.STOP)],
                         "overlap on users-2", id="kill-and-stop"),
        ],
    )  # fmt: skip
    def test_a_schedule_that_cannot_be_applied_is_refused(
        self, windows: list[FaultWindow], message: str
    ) -> None:
        with pytest.raises(ValidationError, match=message):
            FaultSchedule(windows=tuple(windows))

    def test_toxics_on_one_instance_may_overlap(self) -> None:
        """Each toxic is named after its window, so two on one proxy never collide."""
        FaultSchedule(windows=(window("a", 0, 5), window("b", 1, 6, FaultKind.RESET_PEER)))

    def test_toxicity_is_a_probability(self) -> None:
        with pytest.raises(ValidationError, match="less than or equal to 1"):
            FaultSpec(kind=FaultKind.LATENCY, instance="users-1", toxicity=2.0)


@pytest.mark.behaviour("harness.fault_schedule")
class TestRunner:
    def test_windows_start_and_end_on_time_and_ends_come_first(self, tmp_path: Path) -> None:
        """Applied at start, removed at end; at a shared moment the ending window goes first."""
        time = VirtualTime()
        recorder = Recorder(time)
        schedule = FaultSchedule(windows=(window("a", 1.0, 3.0), window("b", 3.0, 4.5, instance="users-1")))
        events = EventLog("test")
        applier = FaultApplier(recorder, events, ledger=tmp_path / "faults.json", clock=time.clock)
        runner = ScheduleRunner(schedule, applier, wait=time.wait)
        runner.run()
        assert recorder.calls == [(1.0, "apply", "a"), (3.0, "remove", "a"), (3.0, "apply", "b"),
                                  (4.5, "remove", "b")]  # fmt: skip
        assert [(e["event"], e["window"]) for e in events.events if e["event"].startswith("fault.")
                and "window" in e] == [("fault.start", "a"), ("fault.end", "a"), ("fault.start", "b"),
                                       ("fault.end", "b")]  # fmt: skip
        assert read_ledger(tmp_path / "faults.json") == []
        # each fault also carries its own end, EXPIRY_MARGIN past its window, should the runner die
        assert recorder.expiries["a"] == pytest.approx(2.0 + EXPIRY_MARGIN, abs=0.5)
        assert recorder.expiries["b"] == pytest.approx(1.5 + EXPIRY_MARGIN, abs=0.5)

    def test_a_window_open_until_cleanup_is_removed_when_the_run_ends(self, tmp_path: Path) -> None:
        """Whatever ends the run, nothing it applied stays applied; the ledger shows what is live."""
        time = VirtualTime()
        recorder = Recorder(time)
        schedule = FaultSchedule(windows=(window("a", 0.5, None),))
        ledger = tmp_path / "faults.json"
        seen: list[list[str]] = []

        def wait(seconds: float) -> bool:
            seen.append([w.name for w in read_ledger(ledger)])
            return time.wait(seconds)

        applier = FaultApplier(recorder, EventLog("test"), ledger=ledger, clock=time.clock)
        runner = ScheduleRunner(schedule, applier, wait=wait)
        runner.run()
        assert [c[1:] for c in recorder.calls] == [("apply", "a"), ("remove", "a")]
        assert recorder.expiries["a"] is None
        assert json.loads(ledger.read_text())["applied"] == []

    def test_a_stop_ends_the_run_and_cleans_up(self) -> None:
        """stop() from anywhere: the next wait returns at once and applied faults are removed."""
        time = VirtualTime()
        recorder = Recorder(time)
        schedule = FaultSchedule(
            windows=(window("a", 0.0, 100.0), window("b", 50.0, 60.0, instance="users-1"))
        )
        answers = iter([False, True])  # the first wait runs out; during the second, stop() arrives
        applier = FaultApplier(recorder, EventLog("test"), clock=time.clock)
        runner = ScheduleRunner(schedule, applier, wait=lambda _s: next(answers))
        runner.run()
        assert [c[1:] for c in recorder.calls] == [("apply", "a"), ("remove", "a")]

    def test_a_fault_that_cannot_be_applied_ends_the_schedule_with_the_reason(self) -> None:
        """The run that plays it must stop: its checks would judge a fault that never happened. What was
        applied before is removed; nothing after it is applied."""
        time = VirtualTime()
        recorder = Recorder(time, fail_on="b")
        schedule = FaultSchedule(windows=(window("a", 0.0, 5.0), window("b", 1.0, 2.0, instance="users-1"),
                                          window("c", 3.0, 4.0, instance="users-3")))  # fmt: skip
        events = EventLog("test")
        runner = ScheduleRunner(schedule, FaultApplier(recorder, events, clock=time.clock), wait=time.wait)
        runner.run()
        assert [c[1:] for c in recorder.calls] == [("apply", "a"), ("remove", "a")]
        assert runner.failures == ["b: latency latency=100 on users-1: instance gone"]
        assert [e["window"] for e in events.of_type("fault.failed")] == ["b"]
        assert isinstance(runner.error, FaultNotApplied)
        assert str(runner.error).endswith("could not be applied, so the run stopped: instance gone")
        assert runner.error.exit_code == ExitCode.ENVIRONMENT  # not a refusal of the proxy: not bad input
