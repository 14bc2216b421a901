"""The load run's HTML report: the harness's report renderer fed with the run's timeline, figures and tables.

The timeline gives the plots (Locust's rate and percentiles from its load samples, each instance's
requests, breaker lanes, fault windows as bands); the tables give Locust's statistics, the caller's
shares over time and the two witnesses of its attempts.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from harness.load._results import LoadResults
from harness.report import Link, Note, ReportInput, ReportKind, Table, collect_metadata, write_report
from harness.timeline import Timeline

MEASURED = (
    "Latency is what Locust measures for each request (FastHttpUser, time.perf_counter): from sending the "
    "request to reading the whole answer, in milliseconds. Locust keeps it rounded in a histogram: exact "
    "below 100 ms, to 10 ms below 1 s, to 100 ms below 10 s; every percentile here comes from that "
    "histogram (its final statistics, written when Locust stops), so it carries that rounding.\n\n"
    "Over time, the load plot reads Locust's stats history: one row a second with a whole-second "
    "timestamp (placed at the middle of its second, so up to half a second off), the rate as completed "
    "requests between two rows, and percentiles over Locust's trailing window of about 10 s.\n\n"
    "Shares, breaker states and per-instance requests are not Locust's: they come from the caller's own "
    "events (one per attempt and per breaker transition, time.monotonic()), merged on the timeline with "
    "the fault windows; the caller's /metrics counters are a second witness of the attempts."
)
OMISSION = (
    "With a constant arrival rate (rate_per_user), the offered rate is the users times the per-user rate, "
    "time-weighted over the run, and the achieved rate is completed requests per second. A Locust user "
    "waits for its answer before sending again, so when answers slow down it sends less than asked: a "
    "run that achieved less than 95% of the offered rate is flagged, because its latency figures leave "
    "out the requests that were never sent (coordinated omission)."
)


def write_load_report(
    results: LoadResults, timeline: Timeline | None, shares: Table | None, path: Path
) -> Path:
    """Render ``report.html`` for one load run."""
    folder = path.parent
    links = [
        Link(title=name, href=name)
        for name in (
            "results.json",
            "timeline.json",
            "locust.json",
            "locust_stats.csv",
            "locust_stats_history.csv",
            "locust_failures.csv",
            "locust.log",
        )
        if (folder / name).exists()
    ]
    notes = [Note(title="How this was measured", text=MEASURED)]
    if results.offered_rate is not None:
        notes.append(Note(title="Offered and achieved rate", text=OMISSION))
    if results.warnings:
        notes.append(Note(title="Warnings", text="\n\n".join(results.warnings)))
    tables = [_locust_table(results)]
    if results.failures:
        tables.append(
            Table(
                title="Locust's failures",
                columns=["request", "error", "occurrences"],
                rows=[[f"{f.method} {f.name}", f.error, str(f.occurrences)] for f in results.failures],
            )
        )
    if results.evidence:
        tables.append(
            Table(
                title="The caller's attempts per instance: two witnesses",
                columns=[
                    "instance",
                    "attempt events",
                    "failed",
                    "/metrics counters",
                    "share",
                    "weight's share",
                ],
                rows=[
                    [
                        e.instance,
                        str(e.attempts),
                        str(e.failed),
                        "-" if e.metrics_attempts is None else str(e.metrics_attempts),
                        f"{e.share:.1%}",
                        "-" if e.expected_share is None else f"{e.expected_share:.1%}",
                    ]
                    for e in results.evidence
                ],
            )
        )
    if shares is not None:
        tables.append(shares)
    report = ReportInput(
        title=results.title,
        kind=ReportKind.LOAD,
        metadata=collect_metadata(command=shlex.join(sys.argv), started=results.started, ended=results.ended),
        summary=_summary(results),
        timeline=timeline,
        sections=results.sections,
        tables=tables,
        links=links,
        notes=notes,
    )
    return write_report(report, path)


def _summary(results: LoadResults) -> str:
    offered = "" if results.offered_rate is None else f" of {results.offered_rate:.1f} offered"
    flag = " COORDINATED OMISSION: the generator fell behind." if results.coordinated_omission else ""
    lines = f"{len(results.failed)} check(s) failed." if results.failed else "Every threshold and check held."
    return (
        f"{results.total.requests} requests to {results.target}, {results.achieved_rate:.1f} req/s{offered}, "
        f"{results.total.failure_ratio:.2%} failed. {lines}{flag}"
    )


def _locust_table(results: LoadResults) -> Table:
    rows = []
    for stats in [*results.endpoints, results.total]:
        cells = [
            f"{stats.method} {stats.name}".strip(),
            str(stats.requests),
            str(stats.failures),
            f"{stats.rate:.2f}",
        ]
        cells += [_ms(stats.percentile(q)) for q in (0.5, 0.95, 0.99)]
        cells += [_ms(stats.average_ms), _ms(stats.max_ms)]
        rows.append(cells)
    return Table(
        title="Locust's statistics",
        columns=[
            "request",
            "requests",
            "failures",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "average ms",
            "max ms",
        ],
        rows=rows,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def shares_table(
    caller: str, service: str, instances: list[str], rows: list[tuple[float, int, dict[str, float]]]
) -> Table:
    """The caller's shares per bin of time, one column per instance."""
    return Table(
        title=f"Shares over time: {caller} -> {service} (attempts sent per bin)",
        columns=["from (s)", "attempts", *instances],
        rows=[
            [f"{start:.1f}", str(count), *(f"{shares[i]:.0%}" if count else "-" for i in instances)]
            for start, count, shares in rows
        ],
    )
