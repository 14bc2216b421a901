"""The chaos run's report: the journal and the timeline turned into the harness's HTML report."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.checks._figures import Figure
from harness.report import (
    Activity,
    ActivityKind,
    ActivityStatus,
    FigureSection,
    Hypothesis,
    Note,
    ProbeResult,
    ReportInput,
    ReportKind,
    Table,
    collect_metadata,
    write_report,
)
from harness.timeline import Timeline
from harness.verdict import Verdict

MEASURED = (
    "Every figure over time is read from the run's timeline: the events each process wrote (a caller's "
    "ServiceClient writes one event per attempt and per breaker transition, the registry one per "
    "membership change, the harness one per fault window and per request of its own traffic), merged by "
    "the machine's monotonic clock. Latency of the harness's traffic is the time from sending a request "
    "to reading its whole answer, measured with time.monotonic() (sub-microsecond resolution)."
)


def write_chaos_report(
    journal: dict[str, Any], timeline: Timeline, experiment: dict[str, Any], path: Path, verdict: str = ""
) -> Path:
    """Render ``report.html`` for one chaos run."""
    harness = journal.get("harness", {})
    started = _time(journal.get("start")) or timeline.origin_wall
    ended = _time(journal.get("end")) or datetime.now(UTC)
    report = ReportInput(
        title=str(experiment.get("title", "chaos experiment")),
        kind=ReportKind.CHAOS,
        metadata=collect_metadata(
            command=shlex.join(sys.argv), started=started, ended=max(ended, started), seed=harness.get("seed")
        ),
        summary=verdict or str(experiment.get("description", "")),
        verdict_given=Verdict(harness["verdict"]) if harness.get("verdict") else None,
        judged=not harness.get("stopped"),
        timeline=timeline,
        sections=[_conformance(c) for c in harness.get("conformance", [])],
        hypothesis=_hypothesis(journal, experiment),
        activities=[
            a for a in (_activity(run) for run in journal.get("run", []) + journal.get("rollbacks", [])) if a
        ],
        tables=_expectations(harness.get("expectations", [])) + _cleanup(harness.get("cleanup")),
        notes=[Note(title="How this was measured", text=MEASURED)],
    )
    return write_report(report, path)


def _conformance(item: dict[str, Any]) -> FigureSection:
    under = f" under {item['fault']}" if item.get("fault") else ""
    return FigureSection(
        title=f"Breaker of {item.get('caller')} towards {item['instance']}{under}",
        figures=[Figure.model_validate(f) for f in item["figures"]],
    )


def _hypothesis(journal: dict[str, Any], experiment: dict[str, Any]) -> Hypothesis | None:
    declared = experiment.get("steady-state-hypothesis")
    if not declared:
        return None
    states = journal.get("steady_states") or {}
    before = _probes(states.get("before"))
    if before is None:
        return None
    after_cleanup = (journal.get("harness") or {}).get("steady_state_after_cleanup")
    return Hypothesis(
        title=str(declared.get("title", "steady state")),
        before=before,
        after=_probes(states.get("after")),
        after_cleanup=_probes(after_cleanup),
    )


def _probes(state: dict[str, Any] | None) -> list[ProbeResult] | None:
    if not state or "probes" not in state:
        return None
    return [
        ProbeResult(
            name=str(p["activity"].get("name")),
            value=_value(p.get("output")),
            tolerance=json.dumps(p["activity"].get("tolerance"), default=str),
            held=bool(p.get("tolerance_met", p.get("status") == "succeeded")),
        )
        for p in state["probes"]
    ]


def _activity(run: dict[str, Any]) -> Activity | None:
    activity = run.get("activity", {})
    start, end = _time(run.get("start")), _time(run.get("end"))
    if start is None or end is None:
        return None
    status = str(run.get("status", "failed"))
    output = run.get("output") if status == "succeeded" else (run.get("exception") or ["?"])[-1]
    return Activity(
        name=str(activity.get("name", "?")),
        kind=ActivityKind.PROBE if activity.get("type") == "probe" else ActivityKind.ACTION,
        start=start,
        end=max(end, start),
        status=ActivityStatus(status)
        if status in ActivityStatus.__members__.values()
        else ActivityStatus.FAILED,
        output=_short(output),
        background=bool(activity.get("background")),
    )


def _expectations(expectations: list[dict[str, Any]]) -> list[Table]:
    if not expectations:
        return []
    rows = [
        [
            e["probe"],
            _short(e["output"]),
            json.dumps(e["tolerance"], default=str),
            e.get("verdict", "held" if e["held"] else "deviated"),
            e.get("reason", "") or "; ".join(e.get("evidence", [])),
        ]
        for e in expectations
    ]
    return [
        Table(
            title="Method probes judged by the harness (after the evidence each declared)",
            columns=["probe", "output", "tolerance", "verdict", "why"],
            rows=rows,
        )
    ]


def _cleanup(cleanup: dict[str, Any] | None) -> list[Table]:
    if not cleanup:
        return []
    rows = [["removed", item] for item in cleanup.get("removed", [])]
    rows += [["restored", item] for item in cleanup.get("restored", [])]
    rows += [["LEFT BEHIND", item] for item in cleanup.get("left", [])]
    return [
        Table(title="Cleanup", columns=["what", "fault or process"], rows=rows or [["nothing", "to undo"]])
    ]


def _value(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return _short(value)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
