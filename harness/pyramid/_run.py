"""``run_pyramid``: run every level (or read their JUnit XML) and build the behaviour x level matrix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ConfigError
from harness.pyramid._junit import CaseResult, Outcome, read_junit, suite_seconds
from harness.pyramid._levels import (
    DEFAULT_LEVEL_TIMEOUT,
    LevelRun,
    Progress,
    choose_levels,
    discover_levels,
    order_levels,
    run_level,
)
from harness.pyramid._matrix import build_rows, failures_of, tally
from harness.pyramid._results import LevelSource, LevelSummary, PyramidResult

# What pytest's exit codes mean when a level's run ends in one other than 0 (passed) or 1 (tests failed).
_EXIT_CODES = {
    2: "interrupted (a collection error, or stopped)",
    3: "an internal error",
    4: "a usage error (bad option, or an unknown behaviour id)",
    5: "no tests collected",
}


class PyramidSettings(BaseModel):
    """What ``harness pyramid`` runs: which levels of which project, or which JUnit XML files to read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Path()
    levels: tuple[str, ...] | None = None
    """None: every level folder under ``root/tests``. Naming some means holes are shown, not judged."""
    from_dir: Path | None = None
    """Read the ``*.xml`` files under this folder instead of running anything."""
    report_dir: Path = Path("pyramid-report")
    level_timeout: float = Field(DEFAULT_LEVEL_TIMEOUT, gt=0)


def run_pyramid(
    settings: PyramidSettings, *, command: str, progress: Progress | None = None
) -> PyramidResult:
    """Run (or read) the levels and build the matrix; the caller writes it (``write_result``)."""
    say = progress or (lambda _line: None)
    started = datetime.now(UTC)
    if settings.from_dir is not None:
        levels, cases, summaries = _read_levels(settings.from_dir, settings.levels)
    else:
        levels, cases, summaries = _run_levels(settings, say)
    rows, uncatalogued = build_rows(cases, levels)
    return PyramidResult(
        command=command,
        started=started,
        ended=datetime.now(UTC),
        levels=summaries,
        rows=rows,
        failures=failures_of(cases),
        uncatalogued=uncatalogued,
        holes_judged=settings.levels is None,
    )


def _run_levels(
    settings: PyramidSettings, say: Progress
) -> tuple[tuple[str, ...], list[CaseResult], list[LevelSummary]]:
    root = settings.root.resolve()
    levels = choose_levels(discover_levels(root), settings.levels)
    cases: list[CaseResult] = []
    summaries = []
    for number, level in enumerate(levels, start=1):
        junit = settings.report_dir / "junit" / f"{level}.xml"
        log = settings.report_dir / "logs" / f"{level}.log"
        say(f"{level}: running tests/{level} ({number}/{len(levels)}), output in {log}")
        run = run_level(level, root=root, junit=junit, log=log, timeout=settings.level_timeout, progress=say)
        found = read_junit(junit, level=level) if junit.exists() else []
        problem = _problem(run, found, settings.level_timeout)
        counts = tally(found)
        summaries.append(
            counts.summary(
                level,
                LevelSource.RAN,
                str(junit),
                exit_code=run.exit_code,
                seconds=round(run.seconds, 1),
                problem=problem,
            )
        )
        cases += found
        verdict = f"{counts.passed} passed, {counts.failed} failed, {counts.skipped} skipped"
        say(f"{level}: {verdict} in {run.seconds:.1f} s" + (f" ({problem})" if problem else ""))
    return levels, cases, summaries


def _read_levels(
    folder: Path, requested: Sequence[str] | None
) -> tuple[tuple[str, ...], list[CaseResult], list[LevelSummary]]:
    files = sorted(folder.rglob("*.xml"))
    if not files:
        raise ConfigError(f"no JUnit XML (*.xml) under {folder}")
    by_level: dict[str, list[CaseResult]] = {}
    sources: dict[str, list[str]] = {}
    seconds: dict[str, float | None] = {}
    for path in files:
        found = read_junit(path)
        in_file = {case.level for case in found}
        for case in found:
            by_level.setdefault(case.level, []).append(case)
        for level in in_file:
            sources.setdefault(level, []).append(str(path))
            # pytest's own wall time for the file, when the file is one level's run (as a CI job writes it)
            alone = len(in_file) == 1 and seconds.get(level, 0.0) is not None
            seconds[level] = (seconds.get(level) or 0.0) + suite_seconds(path) if alone else None
    levels = choose_levels(order_levels(list(by_level)), requested)
    cases = [case for level in levels for case in by_level[level]]
    summaries = [
        tally(by_level[level]).summary(
            level, LevelSource.READ, ", ".join(sources[level]),
            seconds=None if seconds[level] is None else round(seconds[level] or 0.0, 1),
        )
        for level in levels
    ]  # fmt: skip
    return levels, cases, summaries


def _problem(run: LevelRun, found: Sequence[CaseResult], timeout: float) -> str:
    """Why a level's run cannot be trusted beyond its failed tests; empty when it ran cleanly."""
    if run.timed_out:
        return f"stopped at its deadline of {timeout:g} s; see {run.log}"
    if not run.junit.exists():
        return f"pytest exited {run.exit_code} without writing JUnit XML; see {run.log}"
    failed = any(case.outcome is Outcome.FAILED for case in found)
    if run.exit_code == 0 or (run.exit_code == 1 and failed):
        return ""
    meaning = _EXIT_CODES.get(run.exit_code or 0, "an unexpected exit code")
    return f"pytest exited {run.exit_code}: {meaning}; see {run.log}"
