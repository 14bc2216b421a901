"""What a run that a signal stopped leaves in its report folder: ``interrupted.json`` and, unless the run had
already written its own report, a ``report.html`` that says it was interrupted and links what it did write.

Without them, the folder of an interrupted run shows the last complete run's report (or nothing) as if it
were this one's: a reader must never take a stale verdict for the run they stopped.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.report._html import write_report
from harness.report._metadata import collect_metadata
from harness.report._model import Link, Note, ReportInput, ReportKind

INTERRUPTED_FILE = "interrupted.json"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Interruption:
    """A run stopped by ``signum`` after starting at ``started``; ``cleaned`` says what was undone."""

    kind: ReportKind
    signum: int
    started: datetime
    cleaned: str


def write_interrupted(folder: Path, interruption: Interruption, *, now: datetime | None = None) -> Path:
    """Record the interruption in ``folder``: always ``interrupted.json``; ``report.html`` only when the run
    did not write one itself (a report older than the run's start is an earlier run's and is replaced).
    Returns the report's path."""
    ended = now or datetime.now(UTC)
    name = signal.Signals(interruption.signum).name
    seconds = (ended - interruption.started).total_seconds()
    command = " ".join(["harness", *sys.argv[1:]])
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "interrupted": True,
        "signal": name,
        "command": command,
        "started": interruption.started.isoformat(),
        "ended": ended.isoformat(),
        "seconds": round(seconds, 3),
        "cleaned": interruption.cleaned,
        "verdict": None,
    }
    (folder / INTERRUPTED_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    report = folder / REPORT_FILE
    if _written_since(report, interruption.started):
        return report
    written = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file()
        and p.name not in (REPORT_FILE, INTERRUPTED_FILE)
        and _written_since(p, interruption.started)
    )
    summary = (
        f"Interrupted by {name} after {seconds:.1f} s, before its verdict: nothing in this folder is a "
        f"verdict on the system. {interruption.cleaned[:1].upper()}{interruption.cleaned[1:]}."
    )
    page = ReportInput(
        title=f"{command}: interrupted",
        kind=interruption.kind,
        metadata=collect_metadata(command=command, started=interruption.started, ended=ended),
        summary=summary,
        judged=False,
        links=[Link(title=path, href=path) for path in written[:200]],
        notes=[Note(title="What this run wrote before it stopped",
                    text="The links above are the files this run wrote into the folder before the signal; "
                    "they are partial." if written else "This run wrote nothing here before the signal.")],
    )  # fmt: skip
    return write_report(page, report)


def _written_since(path: Path, moment: datetime) -> bool:
    try:
        return path.stat().st_mtime >= moment.timestamp()
    except OSError:
        return False
