"""The pyramid's results as terminal text: the matrix (holes marked), the levels, failures, seeded bugs."""

from __future__ import annotations

from harness.pyramid._results import BugResult, Catch, Cell, LevelVerdict, MutantsResult, PyramidResult

_LISTED = 20


def short(cell: Cell) -> str:
    """``12`` passed, ``F2/12`` with failures, ``s3`` skipped only, ``-`` no test."""
    if cell.failed:
        return f"F{cell.failed}/{cell.tests}"
    if cell.passed:
        return str(cell.passed)
    return f"s{cell.skipped}" if cell.skipped else "-"


def matrix_lines(result: PyramidResult) -> list[str]:
    """The behaviour x level matrix, grouped, one line per behaviour, then the levels and the verdict."""
    levels = [summary.level for summary in result.levels]
    width = max((len(row.id) for row in result.rows), default=10) + 2
    widths = [max(len(level), 6) for level in levels]
    header = "behaviour".ljust(width) + "  ".join(
        level.rjust(w) for level, w in zip(levels, widths, strict=True)
    )
    lines = [header, "-" * len(header)]
    group = None
    for row in result.rows:
        if row.group != group:
            group = row.group
            lines.append(f"{group}")
        cells = "  ".join(short(row.cells[level]).rjust(w) for level, w in zip(levels, widths, strict=True))
        flag = "  HOLE" if not row.held else ("  FAILED" if row.failed else "")
        lines.append(f"  {row.id}".ljust(width) + cells + flag)
    lines.append("")
    for summary in result.levels:
        took = "" if summary.seconds is None else f" in {summary.seconds:.1f} s"
        counts = f"{summary.passed} passed, {summary.failed} failed, {summary.skipped} skipped"
        lines.append(
            f"{summary.level}: {summary.tests} tests ({counts}){took}; {summary.untagged} hold no behaviour"
        )
        if summary.problem:
            lines.append(f"  problem: {summary.problem}")
    lines += _listed("failed tests", [f"{f.level}: {f.node}: {f.message}" for f in result.failures])
    holes = result.holes
    if holes:
        judged = "" if result.holes_judged else " (not judged: only some levels were run)"
        lines += _listed(f"holes{judged}", holes)
    if result.uncatalogued:
        lines += _listed("ids in the XML but not in the catalogue", result.uncatalogued)
    lines.append("")
    lines.append(pyramid_verdict(result))
    return lines


def pyramid_verdict(result: PyramidResult) -> str:
    held = sum(row.held for row in result.rows)
    tests = sum(summary.tests for summary in result.levels)
    head = f"{held} of {len(result.rows)} behaviours held by {tests} tests over {len(result.levels)} levels"
    if result.passed:
        return f"PASSED: {head}"
    reasons = []
    if result.failures:
        reasons.append(f"{len(result.failures)} failed tests")
    if result.holes_judged and result.holes:
        reasons.append(
            f"{len(result.holes)} holes: {', '.join(result.holes[:5])}"
            + (", ..." if len(result.holes) > 5 else "")
        )
    if result.problems:
        reasons.append(f"{len(result.problems)} levels did not run cleanly")
    return f"FAILED ({'; '.join(reasons)}): {head}"


def mutants_lines(result: MutantsResult) -> list[str]:
    """One line per seeded bug and level, then the cheapest catching level of each and the verdict."""
    width = max((len(bug.id) for bug in result.bugs), default=10) + 2
    widths = [max(len(level), 13) for level in result.levels]
    header = "seeded bug".ljust(width) + "  ".join(
        lv.rjust(w) for lv, w in zip(result.levels, widths, strict=True)
    )
    lines = [header + "  cheapest", "-" * (len(header) + 10)]
    for bug in result.bugs:
        by_level = {verdict.level: verdict for verdict in bug.levels}
        cells = "  ".join(
            _verdict(by_level.get(lv)).rjust(w) for lv, w in zip(result.levels, widths, strict=True)
        )
        lines.append(bug.id.ljust(width) + cells + "  " + cheapest_text(bug))
    lines.append("")
    for bug in result.bugs:
        if bug.problem:
            lines.append(f"{bug.id}: REFUSED: {bug.problem}")
        elif (cheapest := bug.cheapest) is not None:
            lines.append(f"{bug.id}: caught at {cheapest.level} by {cheapest.test}")
        else:
            lines.append(f"{bug.id}: MISSED by every level run ({', '.join(v.level for v in bug.levels)})")
    lines.append("")
    caught = len(result.bugs) - len(result.missed)
    verdict = "PASSED" if result.passed else f"FAILED (not caught: {', '.join(result.missed)})"
    lines.append(f"{verdict}: {caught} of {len(result.bugs)} seeded bugs caught")
    return lines


def cheapest_text(bug: BugResult) -> str:
    if bug.problem:
        return "refused"
    cheapest = bug.cheapest
    return "none" if cheapest is None else f"{cheapest.level} ({cheapest.seconds:.1f} s)"


def _verdict(verdict: LevelVerdict | None) -> str:
    if verdict is None:
        return ""
    label = {
        Catch.CAUGHT: "caught",
        Catch.MISSED: "missed",
        Catch.TIMED_OUT: "timed out",
        Catch.ERROR: "error",
        Catch.INCONCLUSIVE: "inconclusive",
    }
    return f"{label[verdict.verdict]} {verdict.seconds:.0f}s"


def _listed(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    lines = ["", f"{title} ({len(items)}):"]
    lines += [f"  {item}" for item in items[:_LISTED]]
    if len(items) > _LISTED:
        lines.append(f"  ... and {len(items) - _LISTED} more (see the JSON)")
    return lines
