"""The behaviour x level matrix, built from test case records alone (pure: no files, no processes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.pyramid._catalogue import BEHAVIOURS, Behaviour
from harness.pyramid._junit import CaseResult, Outcome
from harness.pyramid._results import BehaviourRow, Cell, FailedTest, LevelSource, LevelSummary


def build_rows(
    cases: Sequence[CaseResult], levels: Sequence[str], catalogue: Sequence[Behaviour] = BEHAVIOURS
) -> tuple[list[BehaviourRow], list[str]]:
    """One row per catalogued behaviour with a cell per level, and the behaviour ids found in the cases
    that the catalogue does not have (JUnit XML written by another version of it)."""
    counts: dict[tuple[str, str], dict[Outcome, int]] = {}
    for case in cases:
        for id in case.behaviours:
            tally = counts.setdefault((id, case.level), dict.fromkeys(Outcome, 0))
            tally[case.outcome] += 1
    rows = []
    for behaviour in catalogue:
        cells = {}
        for level in levels:
            tally = counts.get((behaviour.id, level), {})
            cells[level] = Cell(
                passed=tally.get(Outcome.PASSED, 0),
                failed=tally.get(Outcome.FAILED, 0),
                skipped=tally.get(Outcome.SKIPPED, 0),
            )
        row = BehaviourRow(
            id=behaviour.id, group=behaviour.group, description=behaviour.description, cells=cells
        )
        rows.append(row)
    catalogued = {behaviour.id for behaviour in catalogue}
    uncatalogued = sorted({id for case in cases for id in case.behaviours} - catalogued)
    return rows, uncatalogued


def failures_of(cases: Sequence[CaseResult]) -> list[FailedTest]:
    """Every failed test case, in the order the cases came."""
    return [
        FailedTest(level=case.level, node=case.node, message=case.message)
        for case in cases
        if case.outcome is Outcome.FAILED
    ]


@dataclass(frozen=True)
class Tally:
    """A level's test cases by outcome, and how many hold no behaviour."""

    passed: int
    failed: int
    skipped: int
    untagged: int

    def summary(self, level: str, source: LevelSource, junit: str, **more: Any) -> LevelSummary:
        return LevelSummary(
            level=level,
            source=source,
            junit=junit,
            passed=self.passed,
            failed=self.failed,
            skipped=self.skipped,
            untagged=self.untagged,
            **more,
        )


def tally(cases: Sequence[CaseResult]) -> Tally:
    """Passed, failed, skipped and untagged (holding no behaviour) test cases."""
    return Tally(
        passed=sum(case.outcome is Outcome.PASSED for case in cases),
        failed=sum(case.outcome is Outcome.FAILED for case in cases),
        skipped=sum(case.outcome is Outcome.SKIPPED for case in cases),
        untagged=sum(not case.behaviours for case in cases),
    )
