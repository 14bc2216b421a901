"""An interrupted run's report folder says so, and never shows an earlier run's verdict as this one's."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.report import ReportKind
from harness.report._interrupted import Interruption, write_interrupted


def interruption(started: datetime) -> Interruption:
    return Interruption(
        ReportKind.LOAD, signal.SIGTERM, started, "Locust, the stack and every fault were stopped"
    )


class TestInterruptedReport:
    def test_an_earlier_runs_report_is_replaced_by_one_that_says_interrupted(self, tmp_path: Path) -> None:
        """A report.html older than the run is an earlier run's: it is replaced, and the files this run wrote
        are linked."""
        stale = tmp_path / "report.html"
        stale.write_text("<p>held: every threshold and check</p>")
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
        os.utime(stale, (hour_ago, hour_ago))
        started = datetime.now(UTC) - timedelta(seconds=5)
        (tmp_path / "locust.log").write_text("partial")
        page = write_interrupted(tmp_path, interruption(started))
        html = page.read_text()
        assert "held: every threshold and check" not in html
        assert "Interrupted by SIGTERM" in html
        assert 'href="locust.log"' in html
        said = json.loads((tmp_path / "interrupted.json").read_text())
        assert said["signal"] == "SIGTERM"
        assert said["verdict"] is None
        assert said["seconds"] >= 5

    def test_a_report_the_run_wrote_itself_is_kept(self, tmp_path: Path) -> None:
        """A run that wrote its own report before it stopped (a chaos run's "not judged" page) keeps it."""
        started = datetime.now(UTC) - timedelta(seconds=1)
        own = tmp_path / "report.html"
        own.write_text("<p>not judged: interrupted</p>")
        assert write_interrupted(tmp_path, interruption(started)) == own
        assert own.read_text() == "<p>not judged: interrupted</p>"
        assert (tmp_path / "interrupted.json").exists()
