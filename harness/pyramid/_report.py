"""The pyramid's HTML report: the matrix, the levels and the seeded bugs, from the JSON in one folder.

Both runs write their JSON (``pyramid.json``, ``mutants.json``) into the same report folder and then
render ``report.html`` from whatever is there, so one report shows the matrix and the seeded bugs.
"""

from __future__ import annotations

from pathlib import Path

from harness.checks._figures import Comparison, Figure
from harness.pyramid._render import cheapest_text
from harness.pyramid._results import (
    MUTANTS_JSON,
    PYRAMID_JSON,
    Catch,
    LevelVerdict,
    MutantsResult,
    PyramidResult,
    read_mutants,
    read_pyramid,
)
from harness.report import (
    FigureSection,
    Link,
    Note,
    ReportInput,
    ReportKind,
    Table,
    collect_metadata,
    write_report,
)

REPORT_HTML = "report.html"

READING = (
    "Rows are the behaviours the harness promises (harness/pyramid/_catalogue.py), columns the levels of the "
    "test pyramid (the folders under tests/). A cell counts the tests of that level that declare the "
    "behaviour with @pytest.mark.behaviour(...): passed ones as a number, failed ones as 'n/m FAILED'. A "
    "behaviour no test ran for is a hole.\n\n"
    "Holes are judged when every level was run or read; a run of some levels (--levels) shows them without "
    "failing on them, since another level may hold them."
)
SEEDING = (
    "Each seeded bug is a small patch (harness/pyramid/_bugs.py) applied to a temporary copy of the source; "
    "pytest and every service process it starts import that copy. Each level runs with -x and catches the "
    "bug when one of its tests fails; the cheapest level is the lowest one that catches it, with the wall "
    "time of that level's run. A bug no level catches is a test to write."
)


def write_pyramid_report(folder: Path) -> Path:
    """Render ``folder/report.html`` from the ``pyramid.json`` and ``mutants.json`` found in ``folder``."""
    pyramid = read_pyramid(folder / PYRAMID_JSON) if (folder / PYRAMID_JSON).exists() else None
    mutants = read_mutants(folder / MUTANTS_JSON) if (folder / MUTANTS_JSON).exists() else None
    return write_report(pyramid_report(pyramid, mutants), folder / REPORT_HTML)


def pyramid_report(pyramid: PyramidResult | None, mutants: MutantsResult | None) -> ReportInput:
    """The report input for a matrix, a seeded-bug run, or both (at least one)."""
    runs: list[PyramidResult | MutantsResult] = [r for r in (pyramid, mutants) if r is not None]
    if not runs:
        raise ValueError("a pyramid report needs a pyramid run or a seeded-bug run")
    metadata = collect_metadata(
        command=" ; ".join(r.command for r in runs),
        started=min(r.started for r in runs),
        ended=max(r.ended for r in runs),
    )
    sections, tables, links, summary = [], [], [], []
    if pyramid is not None:
        sections.append(_pyramid_figures(pyramid))
        tables += _pyramid_tables(pyramid)
        links.append(Link(title="The matrix as JSON", href=PYRAMID_JSON))
        links += [
            Link(title=f"{s.level}: JUnit XML", href=f"junit/{s.level}.xml")
            for s in pyramid.levels
            if s.source == "ran"
        ]
        holes = len(pyramid.holes) if pyramid.holes_judged else 0
        summary.append(
            f"{sum(r.held for r in pyramid.rows)} of {len(pyramid.rows)} behaviours held, {holes} holes, "
            f"{len(pyramid.failures)} failed tests over {len(pyramid.levels)} levels."
        )
    if mutants is not None:
        sections.append(_mutant_figures(mutants))
        tables += _mutant_tables(mutants)
        links.append(Link(title="The seeded bugs as JSON", href=MUTANTS_JSON))
        summary.append(
            f"{len(mutants.bugs) - len(mutants.missed)} of {len(mutants.bugs)} seeded bugs caught."
        )
    return ReportInput(
        title="Test pyramid: behaviours by level, and the seeded bugs it catches",
        kind=ReportKind.PYRAMID,
        metadata=metadata,
        summary=" ".join(summary),
        sections=sections,
        tables=tables,
        links=links,
        notes=[Note(title="Reading the matrix", text=READING), Note(title="Seeded bugs", text=SEEDING)],
    )


def _pyramid_figures(result: PyramidResult) -> FigureSection:
    figures = [
        Figure(name="failed tests", measured=len(result.failures), bound=0),
        Figure(
            name="levels that did not run cleanly",
            measured=len(result.problems),
            bound=0,
            detail="; ".join(result.problems),
        ),
    ]
    if result.holes_judged:
        figures.append(
            Figure(name="holes", measured=len(result.holes), bound=0, detail=", ".join(result.holes))
        )
    else:
        figures.append(
            Figure(name="behaviours not held in the levels run (not judged)", measured=len(result.holes))
        )
    figures += [
        Figure(name=f"{s.level} wall time", measured=s.seconds, unit=" s", detail=f"{s.tests} tests")
        for s in result.levels
        if s.seconds is not None
    ]
    return FigureSection(title="The pyramid", figures=figures)


def _pyramid_tables(result: PyramidResult) -> list[Table]:
    levels = [s.level for s in result.levels]
    matrix = Table(
        title="Behaviour x level",
        columns=["group", "behaviour", "description", *levels, "verdict"],
        rows=[
            [
                row.group,
                row.id,
                row.description,
                *(row.cells[lv].text() for lv in levels),
                "HOLE" if not row.held else ("FAILED" if row.failed else "held"),
            ]
            for row in result.rows
        ],
    )
    summary = Table(
        title="Levels",
        columns=["level", "tests", "passed", "failed", "skipped", "no behaviour", "wall time", "notes"],
        rows=[
            [
                s.level,
                str(s.tests),
                str(s.passed),
                str(s.failed),
                str(s.skipped),
                str(s.untagged),
                "" if s.seconds is None else f"{s.seconds:.1f} s",
                s.problem or f"{s.source.value}: {s.junit}",
            ]
            for s in result.levels
        ],
    )
    tables = [matrix, summary]
    if result.failures:
        tables.append(
            Table(
                title="Failed tests",
                columns=["level", "test", "message"],
                rows=[[f.level, f.node, f.message] for f in result.failures],
            )
        )
    return tables


def _mutant_figures(result: MutantsResult) -> FigureSection:
    figures = [
        Figure(
            name="seeded bugs not caught",
            measured=len(result.missed),
            bound=0,
            detail=", ".join(result.missed),
        )
    ]
    for bug in result.bugs:
        cheapest = bug.cheapest
        figures.append(
            Figure(
                name=f"{bug.id}: cheapest catching level's wall time",
                measured=None if cheapest is None else cheapest.seconds,
                unit=" s",
                bound=None if cheapest is not None else 0,
                comparison=Comparison.AT_MOST,
                detail="not caught" if cheapest is None else f"{cheapest.level}: {cheapest.test}",
            )
        )
    seconds = (result.ended - result.started).total_seconds()
    figures.append(Figure(name="whole seeded-bug run", measured=round(seconds, 1), unit=" s"))
    return FigureSection(title="Seeded bugs", figures=figures)


def _mutant_tables(result: MutantsResult) -> list[Table]:
    per_bug = Table(
        title="Seeded bugs: catching levels and the cheapest",
        columns=[
            "seeded bug",
            "what it breaks",
            "behaviours",
            "caught by",
            "cheapest (wall time)",
            "caught by test",
        ],
        rows=[
            [
                bug.id,
                bug.description,
                ", ".join(bug.behaviours),
                ", ".join(bug.caught_by) or "none",
                cheapest_text(bug),
                bug.problem or (bug.cheapest.test if bug.cheapest else ""),
            ]
            for bug in result.bugs
        ],
    )
    labels = {
        Catch.CAUGHT: "caught",
        Catch.MISSED: "missed",
        Catch.TIMED_OUT: "timed out",
        Catch.ERROR: "error",
        Catch.INCONCLUSIVE: "inconclusive",
    }
    by_level = Table(
        title="Seeded bugs by level (each level stops at its first failing test)",
        columns=["seeded bug", *result.levels],
        rows=[
            [bug.id, *(_cell(bug.levels, level, labels) for level in result.levels)] for bug in result.bugs
        ],
    )
    return [per_bug, by_level]


def _cell(verdicts: list[LevelVerdict], level: str, labels: dict[Catch, str]) -> str:
    verdict = next((v for v in verdicts if v.level == level), None)
    if verdict is None:
        return "not run"
    return f"{labels[verdict.verdict]} in {verdict.seconds:.1f} s"
