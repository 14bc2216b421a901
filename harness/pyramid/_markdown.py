"""The pyramid's results as Markdown, for a CI job summary (GitHub's ``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

from harness.pyramid._render import cheapest_text, pyramid_verdict, short
from harness.pyramid._results import MutantsResult, PyramidResult

_LISTED = 30


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def pyramid_markdown(result: PyramidResult) -> list[str]:
    """The verdict, the behaviour x level matrix (holes marked), the levels and the failed tests."""
    levels = [summary.level for summary in result.levels]
    lines = ["## Test pyramid", "", f"**{pyramid_verdict(result)}**", ""]
    rows = [
        [f"`{row.id}`", *(short(row.cells[level]) for level in levels),
         "**HOLE**" if not row.held else ("**FAILED**" if row.failed else "")]
        for row in result.rows
    ]  # fmt: skip
    lines += _table(["behaviour", *levels, ""], rows)
    lines += ["", "Cells: tests passed; `F1/3`: one of three failed; `s2`: skipped only; `-`: none.", ""]
    lines += _table(
        ["level", "tests", "passed", "failed", "skipped", "no behaviour", "wall time"],
        [
            [s.level, str(s.tests), str(s.passed), str(s.failed), str(s.skipped), str(s.untagged),
             "" if s.seconds is None else f"{s.seconds:.1f} s"]
            for s in result.levels
        ],
    )  # fmt: skip
    if result.failures:
        lines += ["", "### Failed tests", ""]
        lines += [f"- {f.level}: `{f.node}`: {f.message}" for f in result.failures[:_LISTED]]
    for problem in result.problems:
        lines += ["", f"- problem: {problem}"]
    return [*lines, ""]


def mutants_markdown(result: MutantsResult) -> list[str]:
    """Per seeded bug: what each level did, the cheapest catching level and its wall time."""
    caught = len(result.bugs) - len(result.missed)
    verdict = "PASSED" if result.passed else f"FAILED (not caught: {', '.join(result.missed)})"
    lines = ["## Seeded bugs", "", f"**{verdict}: {caught} of {len(result.bugs)} seeded bugs caught**", ""]
    rows = []
    for bug in result.bugs:
        by_level = {v.level: f"{v.verdict.value} {v.seconds:.0f} s" for v in bug.levels}
        rows.append(
            [f"`{bug.id}`", *(by_level.get(level, "") for level in result.levels), cheapest_text(bug)]
        )
    lines += _table(["seeded bug", *result.levels, "cheapest"], rows)
    return [*lines, ""]
