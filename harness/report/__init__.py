"""HTML reports of runs (chaos, load, pyramid, run): one self-contained file with plots, read offline.

``ReportInput`` says what a report shows; ``render_report`` / ``write_report`` turn it into one HTML file
whose plots read the run's timeline. ``HeadlessChromium`` opens a report in a real browser (for tests and
the docs' screenshot); ``demo_report`` is a realistic synthetic one.
"""

from harness.report._browser import CdpError, HeadlessChromium, PageLog, find_chromium
from harness.report._demo import demo_report
from harness.report._html import render_report, write_report
from harness.report._metadata import collect_metadata, git_commit, harness_version
from harness.report._model import (
    Activity,
    ActivityKind,
    ActivityStatus,
    FigureSection,
    Hypothesis,
    Link,
    Metadata,
    Note,
    ProbeResult,
    ReportInput,
    ReportKind,
    Table,
)

__all__ = [
    "Activity",
    "ActivityKind",
    "ActivityStatus",
    "CdpError",
    "FigureSection",
    "HeadlessChromium",
    "Hypothesis",
    "Link",
    "Metadata",
    "Note",
    "PageLog",
    "ProbeResult",
    "ReportInput",
    "ReportKind",
    "Table",
    "collect_metadata",
    "demo_report",
    "find_chromium",
    "git_commit",
    "harness_version",
    "render_report",
    "write_report",
]
