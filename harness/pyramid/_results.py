"""What a pyramid run and a seeded-bug run found, as versioned JSON: the matrix, the holes, which level
caught which bug. A boundary (CI keeps these files and renders them later), so pydantic, ``extra="forbid"``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import ConfigError

SCHEMA_VERSION: Literal[1] = 1
_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cell(_Model):
    """The tests of one behaviour at one level, by outcome."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def tests(self) -> int:
        return self.passed + self.failed + self.skipped

    @property
    def ran(self) -> int:
        return self.passed + self.failed

    def text(self) -> str:
        """``3``, ``1/3 FAILED``, ``2 skipped`` or ``-``, for tables."""
        if self.failed:
            return f"{self.failed}/{self.tests} FAILED"
        if self.passed:
            return str(self.passed) + (f" (+{self.skipped} skipped)" if self.skipped else "")
        return f"{self.skipped} skipped" if self.skipped else "-"


class BehaviourRow(_Model):
    """One row of the matrix: a catalogued behaviour and its tests per level."""

    id: str
    group: str
    description: str
    cells: dict[str, Cell]

    @property
    def held(self) -> bool:
        """At least one test that ran holds it (only skipped tests hold nothing)."""
        return any(cell.ran for cell in self.cells.values())

    @property
    def failed(self) -> bool:
        return any(cell.failed for cell in self.cells.values())


class LevelSource(enum.StrEnum):
    RAN = "ran"
    READ = "read"


class LevelSummary(_Model):
    """One column: how its pytest ended (when it ran here), its tests by outcome, and its untagged tests."""

    level: str
    source: LevelSource
    junit: str
    exit_code: int | None = None
    seconds: float | None = None
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    untagged: int = 0
    problem: str = ""
    """Why the level cannot be trusted beyond its failed tests (killed at its deadline, no JUnit XML, ...)."""

    @property
    def tests(self) -> int:
        return self.passed + self.failed + self.skipped


class FailedTest(_Model):
    level: str
    node: str
    message: str


class PyramidResult(_Model):
    """The matrix of one ``harness pyramid`` run; it passes when no test failed, every level ran cleanly
    and (when holes are judged: every level was run or read) every catalogued behaviour is held."""

    schema_version: Literal[1] = SCHEMA_VERSION
    command: str
    started: datetime
    ended: datetime
    levels: list[LevelSummary]
    rows: list[BehaviourRow]
    failures: list[FailedTest]
    uncatalogued: list[str] = Field(default_factory=list)
    """Behaviour ids found in JUnit XML but not in this catalogue (XML from another version)."""
    holes_judged: bool = True

    @property
    def holes(self) -> list[str]:
        return [row.id for row in self.rows if not row.held]

    @property
    def problems(self) -> list[str]:
        return [f"{level.level}: {level.problem}" for level in self.levels if level.problem]

    @property
    def passed(self) -> bool:
        holes = self.holes if self.holes_judged else []
        return not (self.failures or self.problems or holes)


class Catch(enum.StrEnum):
    """What one level did against one seeded bug."""

    CAUGHT = "caught"
    MISSED = "missed"
    TIMED_OUT = "timed out"
    ERROR = "error"
    INCONCLUSIVE = "inconclusive"  # a test failed only because the harness could not produce its evidence


class LevelVerdict(_Model):
    level: str
    verdict: Catch
    seconds: float
    exit_code: int | None
    test: str = ""
    """The first test that failed (what caught the bug)."""
    message: str = ""


class BugResult(_Model):
    """One seeded bug: where its patch went and what each level did against it."""

    id: str
    description: str
    behaviours: list[str]
    files: list[str]
    levels: list[LevelVerdict]
    problem: str = ""
    """Why the bug could not be run (its patch no longer applies)."""

    @property
    def caught_by(self) -> list[str]:
        return [v.level for v in self.levels if v.verdict is Catch.CAUGHT]

    @property
    def cheapest(self) -> LevelVerdict | None:
        """The lowest level that caught it (levels are run and listed bottom up)."""
        return next((v for v in self.levels if v.verdict is Catch.CAUGHT), None)

    @property
    def caught(self) -> bool:
        return not self.problem and self.cheapest is not None


class MutantsResult(_Model):
    """A seeded-bug run: passes when every bug was caught by at least one level."""

    schema_version: Literal[1] = SCHEMA_VERSION
    command: str
    started: datetime
    ended: datetime
    cheapest_only: bool
    levels: list[str]
    bugs: list[BugResult]

    @property
    def missed(self) -> list[str]:
        return [bug.id for bug in self.bugs if not bug.caught]

    @property
    def passed(self) -> bool:
        return not self.missed


PYRAMID_JSON = "pyramid.json"
MUTANTS_JSON = "mutants.json"


def write_result(result: PyramidResult | MutantsResult, folder: Path) -> Path:
    """``pyramid.json`` or ``mutants.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (PYRAMID_JSON if isinstance(result, PyramidResult) else MUTANTS_JSON)
    path.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_pyramid(path: Path) -> PyramidResult:
    return _read(PyramidResult, path)


def read_mutants(path: Path) -> MutantsResult:
    return _read(MutantsResult, path)


def _read(model: type[_M], path: Path) -> _M:
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
