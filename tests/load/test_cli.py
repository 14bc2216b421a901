"""`harness load run` as a user runs it, attached to the level's stack: an impossible threshold exits 1 with
the reason, the report folder holds the run's evidence, and a baseline reports the regressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.load import RESULTS_VERSION
from harness.stack import Stack
from harness.timeline import LoadSample, Timeline

from .conftest import PROFILES, harness


class TestImpossibleThreshold:
    @pytest.mark.behaviour("load.thresholds", "harness.exit_codes")
    def test_exits_1_naming_the_threshold_and_by_how_much_and_leaves_its_evidence(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """p50 <= 0.001 ms: exit 1, one DEVIATED line for it; Locust's files, results.json (schema version),
        timeline.json with one load sample per stats-history row, and report.html are written."""
        report = tmp_path / "run"
        done = harness(
            "load",
            "run",
            str(PROFILES / "impossible-threshold.toml"),
            "--attach",
            str(stack.workdir),
            "--report",
            str(report),
        )
        assert done.returncode == 1
        failed = [line for line in done.stdout.splitlines() if line.startswith("DEVIATED ")]
        assert len(failed) == 1, failed
        assert "p50 latency" in failed[0]
        assert "(bound <= 0.001 ms) FAILED by" in failed[0]
        assert "deviated: 1 check(s) did not hold" in done.stderr
        for name in ("locust_stats.csv", "locust_stats_history.csv", "locust.json", "report.html"):
            assert (report / name).exists(), name
        results = json.loads((report / "results.json").read_text())
        assert results["schema_version"] == RESULTS_VERSION
        assert results["verdict"] == "deviated"
        samples = Timeline.load(report / "timeline.json").of(LoadSample)
        assert len(samples) == len(results["history"]) >= 4
        assert max(s.rate for s in samples) > 0

    @pytest.mark.behaviour("load.baseline")
    def test_a_baseline_reports_the_regressions_against_it(self, stack: Stack, tmp_path: Path) -> None:
        """A baseline that was twice as fast, at 1 ms: the p50 and the rate regressed, each one line."""
        first = tmp_path / "first"
        assert (
            harness(
                "load",
                "run",
                str(PROFILES / "impossible-threshold.toml"),
                "--attach",
                str(stack.workdir),
                "--report",
                str(first),
            ).returncode
            == 1
        )
        results = json.loads((first / "results.json").read_text())
        total = results["total"]
        total["percentiles_ms"] = dict.fromkeys(total["percentiles_ms"], 1.0)
        total["rate"] *= 2
        baseline = tmp_path / "baseline.json"
        baseline.write_text(json.dumps(results))
        done = harness(
            "load",
            "run",
            str(PROFILES / "impossible-threshold.toml"),
            "--attach",
            str(stack.workdir),
            "--report",
            str(tmp_path / "second"),
            "--baseline",
            str(baseline),
        )
        assert done.returncode == 1
        regressions = [line for line in done.stdout.splitlines() if line.startswith("DEVIATED Regressions")]
        assert any("p50 latency against the baseline's 1 ms" in line for line in regressions), regressions
        assert any("achieved rate against the baseline's" in line for line in regressions), regressions
