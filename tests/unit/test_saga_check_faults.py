"""The saga check's cut windows: seeded toxics that break HTTP messages mid-way, drawn without sockets."""

from __future__ import annotations

import pytest

from harness.checks._saga_run import SagaCheckConfig, _cuts, cut_windows
from harness.faults import FaultKind, FaultSchedule, FaultSpec, FaultWindow, Stream

INSTANCES = ["users-1", "users-2", "users-3", "notifications-1"]
CUTS = {
    (FaultKind.LIMIT_DATA, Stream.UPSTREAM),
    (FaultKind.LIMIT_DATA, Stream.DOWNSTREAM),
    (FaultKind.SLICER, Stream.UPSTREAM),
    (FaultKind.RESET_PEER, Stream.UPSTREAM),
}


@pytest.mark.behaviour("harness.saga_check", "harness.fault_schedule")
class TestCutWindows:
    def test_the_same_seed_draws_the_same_cuts(self) -> None:
        """Replayable: the cuts are a function of the seed alone."""
        assert cut_windows(1, 50.0, INSTANCES, 12) == cut_windows(1, 50.0, INSTANCES, 12)
        assert cut_windows(1, 50.0, INSTANCES, 12) != cut_windows(2, 50.0, INSTANCES, 12)

    def test_requests_and_answers_are_cut_and_requests_lose_their_first_bytes(self) -> None:
        """limit_data upstream (a request cut after 1-1,200 bytes) and downstream (an answer cut), and a
        slicer with a reset_peer after it, both upstream, held past the window: a request's first piece
        is lost and the rest let through when the window ends."""
        windows = cut_windows(5, 50.0, INSTANCES, 60)
        assert {(w.fault.kind, w.fault.stream) for w in windows} == CUTS
        for w in windows:
            assert w.end is not None
            assert 0.0 <= w.start < w.end <= 50.0
            assert w.fault.instance in INSTANCES
            if w.fault.kind is FaultKind.LIMIT_DATA:
                assert 1 <= int(w.fault.attributes["bytes"]) <= 1200
            elif w.fault.kind is FaultKind.RESET_PEER:
                assert int(w.fault.attributes["timeout"]) * 0.001 > w.end - w.start  # removal ends it
        by_name = {w.name: w for w in windows}
        for name, lose in by_name.items():
            if lose.fault.kind is FaultKind.RESET_PEER:  # its slicer: same place and times, applied first
                slicer = by_name[name.replace("b-reset_peer", "a-slicer")]
                assert slicer.fault.kind is FaultKind.SLICER
                assert (slicer.fault.instance, slicer.start, slicer.end) == (lose.fault.instance, lose.start,
                                                                              lose.end)  # fmt: skip
                assert slicer.name < lose.name
        FaultSchedule(seed=5, windows=tuple(windows))  # names unique, a valid schedule

    def test_cuts_keep_clear_of_other_faults_on_their_instance_and_of_kills(self) -> None:
        """A partition of users-1 for the whole run, a kill from 20 s to 30 s: no cut meets either."""
        down = FaultWindow(name="w000-down", fault=FaultSpec(kind=FaultKind.DOWN, instance="users-1"),
                           start=0.0, end=50.0)  # fmt: skip
        kill = FaultWindow(name="k000-kill", fault=FaultSpec(kind=FaultKind.KILL, instance="orchestrator-1"),
                           start=20.0, end=30.0)  # fmt: skip
        windows = cut_windows(2, 50.0, INSTANCES, 10, clear_of=[down, kill])
        assert windows
        assert all(w.fault.instance != "users-1" for w in windows)
        assert all(w.until <= 20.0 or w.start >= 30.0 for w in windows)

    def test_a_cut_with_no_clear_place_is_still_drawn(self) -> None:
        """Kills over the whole run: the cuts are drawn anyway (the count is what was asked)."""
        kill = FaultWindow(name="k000-kill", fault=FaultSpec(kind=FaultKind.KILL, instance="orchestrator-1"),
                           start=0.0, end=50.0)  # fmt: skip
        assert len({w.name[:4] for w in cut_windows(2, 50.0, INSTANCES, 5, clear_of=[kill])}) == 5

    def test_no_instances_no_cuts(self) -> None:
        """A stack without participants' proxies gets no cut windows."""
        assert cut_windows(1, 50.0, [], 5) == []

    @pytest.mark.parametrize(
        ("orders", "given", "expected"),
        [pytest.param(1000, None, 12, id="one-per-4s"), pytest.param(10, None, 1, id="at-least-one"),
         pytest.param(1000, 0, 0, id="none-asked")],
    )  # fmt: skip
    def test_cut_window_count(self, orders: int, given: int | None, expected: int) -> None:
        """One per 4 s of ordering by default, at least one; an explicit count wins."""
        assert _cuts(SagaCheckConfig(orders=orders, cut_windows=given)) == expected
