"""``harness demo`` on a Stack: every check holds, also when a phase lasts several open periods of the
breaker (its half-open probes reach the failing instance and are within the bound)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.demo import DemoSettings, run_demo, shielded_bound


@pytest.mark.behaviour("breaker.half_open_probes", "harness.demo")
def test_a_long_failing_phase_passes_with_its_half_open_probes(tmp_path: Path) -> None:
    """400 calls against a breaker that probes every 0.2 s: echo-2 sees more than the 3 failures that open
    it, and no more than one probe per open period."""
    report = run_demo(DemoSettings(calls=400, open_duration=0.2, workdir=tmp_path), progress=print)
    shield = next(check for check in report.checks if check.name == "echo-2's breaker opens and shields it")
    print(f"{shield.name}: {shield.detail}")
    found = re.search(r"echo-2 got (\d+) requests", shield.detail)
    assert found is not None, shield.detail
    hits = int(found.group(1))
    assert hits > 3, "the phase was too short to probe: this run shows nothing"
    assert [check.name for check in report.checks if not check.passed] == []
    assert (tmp_path / "events" / "registry.jsonl").exists()


@pytest.mark.behaviour("breaker.half_open_probes")
@pytest.mark.parametrize(
    ("elapsed", "bound"),
    [
        pytest.param(0.05, 3, id="shorter-than-open"),
        pytest.param(1.0, 4, id="one-open-period"),
        pytest.param(2.99, 5, id="two-periods"),
    ],
)
def test_the_bound_adds_the_probes_of_each_open_period(elapsed: float, bound: int) -> None:
    """3 failures to open, then 1 probe each time 1.0 s of open state have run out."""
    assert shielded_bound(3, 1, 1.0, elapsed) == bound
