"""`harness run`, the README's main job: contracts, chaos and load on one stack, one report, one screen."""

from __future__ import annotations

import re
from pathlib import Path

from ._run import harness


def test_the_main_job_holds_and_links_its_three_reports(tmp_path: Path) -> None:
    report = tmp_path / "run"
    done = harness("run", "--report", str(report), timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    summary = lines[lines.index(next(line for line in lines if line.startswith("harness run: "))) :]
    assert len(summary) <= 12  # one screen
    assert re.search(r"HELD         contracts (\d+)/\1 interactions of 10 pacts verified", done.stdout)
    assert "HELD         chaos     the steady state held before, after, and after cleanup" in done.stdout
    load = r"HELD         load      \d+ orders, [\d.]+/s, p99 \d+ ms; every check held"
    assert re.search(load, done.stdout)
    page = (report / "report.html").read_text()
    assert 'href="chaos/report.html"' in page
    assert 'href="load/report.html"' in page
    assert (report / "chaos" / "journal.json").exists()
    assert (report / "load" / "results.json").exists()
    assert not (report / "stack" / "stack.json").exists()  # the stack is stopped
