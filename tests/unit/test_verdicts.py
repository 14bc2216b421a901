"""The verdict-to-exit map, evidence judged first, the harness's timing lag, and signals as interruptions."""

from __future__ import annotations

import os
import signal

import pytest

from harness.checks import Comparison, Figure, judge
from harness.lag import LagMonitor, percentile
from harness.signals import Interrupted, hurried, interrupted_exit, received, stop_on_signals
from harness.verdict import ExitCode, Verdict


@pytest.mark.behaviour("harness.verdicts", "harness.exit_codes")
class TestVerdicts:
    def test_one_exit_code_per_verdict_and_signal(self) -> None:
        """0 held, 1 deviated, 4 inconclusive; 130 SIGINT, 143 SIGTERM."""
        assert [v.exit_code for v in Verdict] == [0, 1, 4]
        assert ExitCode.interrupted_by(signal.SIGINT) == 130
        assert ExitCode.interrupted_by(signal.SIGTERM) == 143

    def test_a_deviation_outweighs_an_inconclusive_check_which_outweighs_held(self) -> None:
        assert Verdict.of([]) is Verdict.HELD
        assert Verdict.of([Verdict.HELD, Verdict.INCONCLUSIVE]) is Verdict.INCONCLUSIVE
        assert Verdict.of([Verdict.INCONCLUSIVE, Verdict.DEVIATED, Verdict.HELD]) is Verdict.DEVIATED

    def test_evidence_is_judged_before_the_checks_beside_it(self) -> None:
        """Thin evidence: inconclusive whatever the checks say; sufficient: the checks decide."""
        calls = Figure(name="calls", measured=5, bound=10, comparison=Comparison.AT_LEAST, evidence=True)
        missed = Figure(name="share", measured=0.4, bound=0.05)
        kept = Figure(name="share", measured=0.01, bound=0.05)
        assert judge([calls, missed]) is Verdict.INCONCLUSIVE
        assert judge([calls, kept]) is Verdict.INCONCLUSIVE
        enough = calls.model_copy(update={"measured": 12})
        assert judge([enough, missed]) is Verdict.DEVIATED
        assert judge([enough, kept]) is Verdict.HELD
        assert judge([calls.model_copy(update={"measured": None})]) is Verdict.INCONCLUSIVE


@pytest.mark.behaviour("harness.verdicts")
class TestLag:
    def test_lag_is_how_late_each_wake_up_came_and_its_p99_over_a_window(self) -> None:
        now = [100.0]
        lateness = iter([0.0, 0.002, 0.050, 0.001])

        def sleep(seconds: float) -> None:
            now[0] += seconds + next(lateness)

        monitor = LagMonitor(interval=0.01, clock=lambda: now[0], sleep=sleep)
        for _ in range(4):
            monitor.sample()
        assert [round(lag, 3) for lag in monitor.lags()] == [0.0, 0.002, 0.05, 0.001]
        assert monitor.p99_ms() == 50.0
        assert monitor.p99_ms(start=100.02, end=100.03) == 2.0
        assert monitor.p99_ms(start=200.0) is None
        assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0

    def test_a_real_monitor_samples_until_stopped(self) -> None:
        with LagMonitor(interval=0.005) as monitor:
            while len(monitor.lags()) < 3:
                pass
        count = len(monitor.lags())
        assert monitor.p99_ms() is not None
        assert len(monitor.lags()) == count  # stopped: no more samples


@pytest.mark.behaviour("harness.signals")
class TestSignals:
    @pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
    def test_a_signal_is_an_interruption_with_its_exit_code(self, sent: signal.Signals, code: int) -> None:
        before = signal.getsignal(sent)
        with pytest.raises(Interrupted) as raised, stop_on_signals():
            os.kill(os.getpid(), sent)  # Python runs the handler right after this call returns
        assert raised.value.exit_code == code
        assert received() == sent
        assert interrupted_exit() == code
        assert signal.getsignal(sent) is before  # the handler in place before is back

    def test_a_second_signal_hurries_the_cleanup_but_never_breaks_it_off(self) -> None:
        cleaned = []

        def run_then_clean_up() -> None:
            try:
                os.kill(os.getpid(), signal.SIGINT)
            finally:
                assert not hurried()
                os.kill(os.getpid(), signal.SIGTERM)  # during the cleanup: no exception here
                assert hurried()
                cleaned.append(True)

        with pytest.raises(Interrupted), stop_on_signals():
            run_then_clean_up()
        assert cleaned == [True]
        assert received() == signal.SIGINT


@pytest.mark.behaviour("harness.exit_codes")
def test_harness_help_shows_the_one_exit_code_map() -> None:
    """Every exit code, with what it means, in `harness --help`: documented once, where users look."""
    from click.testing import CliRunner

    from harness.cli import cli
    from harness.verdict import MEANINGS

    shown = CliRunner().invoke(cli, ["--help"]).output
    for code, meaning in MEANINGS.items():
        assert f"{int(code):<4} {meaning}" in shown


@pytest.mark.behaviour("harness.signals")
def test_a_signal_in_a_deferred_stretch_stops_the_run_when_it_ends() -> None:
    """Inside ``deferred`` (pact's verifier calls Python from C, where an exception is swallowed) the
    signal is kept; the run stops as the stretch ends, with the signal's code."""
    from harness.signals import deferred

    reached = []

    def stretch() -> None:
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append("after the signal, inside the stretch")

    with pytest.raises(Interrupted) as raised, stop_on_signals():
        stretch()
    assert reached == ["after the signal, inside the stretch"]
    assert raised.value.exit_code == 143
