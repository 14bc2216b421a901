"""``run_mutants``: each seeded bug in its own copy of the source, every level run against it, each level
stopping at its first failing test; which levels catch it, the cheapest one and what that cost."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harness.pyramid._bugs import SeededBug, seeded_bugs
from harness.pyramid._junit import Outcome, read_junit
from harness.pyramid._levels import (
    DEFAULT_LEVEL_TIMEOUT,
    LevelRun,
    Progress,
    choose_levels,
    discover_levels,
    run_level,
)
from harness.pyramid._patch import apply_bug, check_bugs, copy_source
from harness.pyramid._results import BugResult, Catch, LevelVerdict, MutantsResult
from harness.verdict import INCONCLUSIVE_MARK

# The pyramid's own tests hold its catalogue to the source it runs on, so in a mutated copy they fail by
# design (a bug's patch no longer applies there): they prove nothing about the bug and are left out.
MACHINERY_TESTS = ("tests/*/test_pyramid*.py",)  # relative to the root: pytest makes it absolute


class MutantSettings(BaseModel):
    """Which seeded bugs to run against which levels of the project at ``root``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Path()
    bugs: tuple[str, ...] | None = None
    """None: the whole catalogue."""
    levels: tuple[str, ...] | None = None
    cheapest_only: bool = False
    """Bottom up, stop at the first level that catches the bug (quick feedback)."""
    report_dir: Path = Path("pyramid-report")
    level_timeout: float = Field(DEFAULT_LEVEL_TIMEOUT, gt=0)
    workdir: Path | None = None
    """Where the copies go (default: the system's temporary folder); each is removed after its bug."""


def run_mutants(
    settings: MutantSettings,
    *,
    command: str,
    progress: Progress | None = None,
    checkpoint: Callable[[MutantsResult], object] | None = None,
) -> MutantsResult:
    """Run the chosen levels against each chosen bug; the caller writes the result (``write_result``).

    ``checkpoint`` gets the result so far after each bug, so a long run cut short keeps what it found."""
    say = progress or (lambda _line: None)
    root = settings.root.resolve()
    bugs = seeded_bugs(settings.bugs)
    levels = choose_levels(discover_levels(root), settings.levels)
    refused = check_bugs(bugs, root)
    started = datetime.now(UTC)
    results: list[BugResult] = []

    def so_far() -> MutantsResult:
        return MutantsResult(
            command=command, started=started, ended=datetime.now(UTC), cheapest_only=settings.cheapest_only,
            levels=list(levels), bugs=results,
        )  # fmt: skip

    for number, bug in enumerate(bugs, start=1):
        say(f"[{number}/{len(bugs)}] {bug.id}: {bug.description}")
        if bug.id in refused:
            say(f"  refused: {refused[bug.id]}")
            results.append(_result(bug, [], refused[bug.id]))
        else:
            results.append(_result(bug, _run_bug(bug, root, levels, settings, say)))
        if checkpoint is not None:
            checkpoint(so_far())
    return so_far()


def _run_bug(
    bug: SeededBug, root: Path, levels: Sequence[str], settings: MutantSettings, say: Progress
) -> list[LevelVerdict]:
    folder = settings.report_dir / "mutants" / bug.id
    verdicts = []
    with tempfile.TemporaryDirectory(prefix=f"harness-mutant-{bug.id}-", dir=settings.workdir) as scratch:
        copy = copy_source(root, Path(scratch) / "src")
        apply_bug(bug, copy)
        for level in levels:
            run = run_level(
                level,
                root=copy,
                junit=folder / f"{level}.xml",
                log=folder / f"{level}.log",
                fail_fast=True,
                ignore=MACHINERY_TESTS,
                timeout=settings.level_timeout,
            )
            verdict = judge(run)
            verdicts.append(verdict)
            caught = f" by {verdict.test}" if verdict.test else ""
            say(f"  {level}: {verdict.verdict.value}{caught} in {verdict.seconds:.1f} s")
            if settings.cheapest_only and verdict.verdict is Catch.CAUGHT:
                break
    return verdicts


def judge(run: LevelRun) -> LevelVerdict:
    """What one level's run (stopped at its first failure) says about the bug: caught when a test failed on
    a deviation; a test that failed because its run was inconclusive, or crashed, catches nothing."""
    seconds = round(run.seconds, 1)
    if run.timed_out:
        return LevelVerdict(
            level=run.level,
            verdict=Catch.TIMED_OUT,
            seconds=seconds,
            exit_code=None,
            message=f"stopped at its deadline; see {run.log}",
        )
    cases = read_junit(run.junit, level=run.level) if run.junit.exists() else []
    failures = [case for case in cases if case.outcome is Outcome.FAILED]
    failed = next((case for case in failures if INCONCLUSIVE_MARK not in case.message), None)
    if failed is None and failures:
        return LevelVerdict(
            level=run.level,
            verdict=Catch.INCONCLUSIVE,
            seconds=seconds,
            exit_code=run.exit_code,
            test=failures[0].node,
            message=failures[0].message,
        )
    if failed is not None:
        return LevelVerdict(
            level=run.level,
            verdict=Catch.CAUGHT,
            seconds=seconds,
            exit_code=run.exit_code,
            test=failed.node,
            message=failed.message,
        )
    if run.exit_code == 0:
        return LevelVerdict(level=run.level, verdict=Catch.MISSED, seconds=seconds, exit_code=0)
    return LevelVerdict(
        level=run.level,
        verdict=Catch.ERROR,
        seconds=seconds,
        exit_code=run.exit_code,
        message=f"pytest exited {run.exit_code} and no test failed; see {run.log}",
    )


def _result(bug: SeededBug, verdicts: list[LevelVerdict], problem: str = "") -> BugResult:
    return BugResult(
        id=bug.id,
        description=bug.description,
        behaviours=list(bug.behaviours),
        files=list(bug.files),
        levels=verdicts,
        problem=problem,
    )
