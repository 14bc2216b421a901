"""A busy machine must not read as a broken system: with one of the two cores taken by a CPU hog
(stress-ng), the breaker profile still holds on a healthy stack and still deviates on a broken one; and
when the harness cannot produce the evidence at all, the run is inconclusive (exit 4), never deviated."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.load import run_load
from harness.stack import Stack, load_topology
from harness.verdict import ExitCode, Verdict

from .conftest import MISCONFIGURED, run

HOG_SECONDS = 120  # stress-ng stops by itself after this, whatever happens to the test


@pytest.fixture(scope="module")
def hog() -> Iterator[None]:
    """One core busy for the module's tests (stress-ng from Debian; `.ci/run` installs it)."""
    if shutil.which("stress-ng") is None:
        message = "stress-ng is needed to take a core (apt-get install stress-ng; ci/pipeline.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run the busy-machine tests")
        pytest.skip(message)
    process = subprocess.Popen(
        ["stress-ng", "--cpu", "1", "--timeout", f"{HOG_SECONDS}s", "--quiet"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def misconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(load_topology(MISCONFIGURED), tmp_path_factory.mktemp("misconfigured-busy")) as running:
        yield running


@pytest.mark.behaviour("load.breaker_under_fault", "harness.verdicts")
class TestWithOneCoreHogged:
    def test_a_healthy_stack_still_holds(self, stack: Stack, hog: None, tmp_path: Path) -> None:
        """breaker-latency on the well-configured stack: held, conclusively, with a core taken."""
        outcome = run("breaker-latency.toml", stack, tmp_path)
        assert outcome.exit_code == ExitCode.HELD, outcome.failed

    def test_a_broken_stack_still_deviates(self, misconfigured: Stack, hog: None, tmp_path: Path) -> None:
        """The same profile on a stack without breakers: deviated, not inconclusive, with a core taken."""
        outcome = run("breaker-latency.toml", misconfigured, tmp_path)
        assert outcome.exit_code == ExitCode.DEVIATED
        assert any("breaker opened during the fault: none" in line for line in outcome.failed)


STRICT = """
title = "a threshold no stack meets, judged on evidence no machine produces"
[target]
kind = "orders"
[load]
users = 4
duration = 4
rate_per_user = 2
[thresholds]
p99_ms = 0.001
[evidence]
max_lag_p99_ms = 0.001
"""


@pytest.mark.behaviour("harness.verdicts")
def test_evidence_too_thin_is_inconclusive_never_deviated(stack: Stack, tmp_path: Path) -> None:
    """A p99 bound of 1 us (deviated on any machine), judged on evidence no machine produces (the harness's
    timing lag at most 1 us): inconclusive, exit 4, the reason with its figure; no deviation reported."""
    path = tmp_path / "strict.toml"
    path.write_text(STRICT)
    outcome = run_load(path, report_dir=tmp_path / "report", stack=stack, progress=print)
    assert outcome.exit_code == ExitCode.INCONCLUSIVE
    assert outcome.results.verdict is Verdict.INCONCLUSIVE
    assert outcome.failed == []
    [reason] = outcome.inconclusive
    assert reason.startswith("harness timing lag p99: ")
    assert "(bound <= 0.001 ms) TOO THIN" in reason
    assert 'data-verdict="inconclusive"' in outcome.report_path.read_text()
    relaxed = path.read_text().replace("max_lag_p99_ms = 0.001", "max_lag_p99_ms = 50")
    path.write_text(relaxed)
    judged = run_load(path, report_dir=tmp_path / "relaxed", stack=stack, progress=print)
    assert judged.exit_code == ExitCode.DEVIATED  # the same run on sufficient evidence: the bound is missed
    assert [line.split(":")[1].strip() for line in judged.failed] == ["p99 latency"]
