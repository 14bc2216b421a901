"""Reading pytest's JUnit XML: one typed record per test case, with its level and the behaviours it holds.

The XML is the one interface between a level's pytest run and the matrix, so the matrix can as well be
built from files a CI job kept as artefacts (``harness pyramid --from DIR``) as from runs made here.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.pyramid._markers import BEHAVIOUR_PROPERTY, LEVEL_PROPERTY

_MESSAGE_LENGTH = 300


class Outcome(enum.StrEnum):
    """How one test case ended (an error in setup or teardown counts as a failure)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CaseResult:
    """One test case as its JUnit record tells it."""

    node: str
    """``classname::name``, ``tests.unit.test_breaker.TestOpening::test_stays_closed_below_threshold``."""
    level: str
    behaviours: tuple[str, ...]
    outcome: Outcome
    seconds: float
    message: str = ""
    """The first line of the failure, error or skip message."""


def read_junit(path: Path, *, level: str | None = None) -> list[CaseResult]:
    """Every test case in one JUnit XML file; ``level`` for cases that do not carry theirs (default: the
    second part of a ``tests.<level>.…`` class name, else the file's stem). ConfigError if unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"cannot read JUnit XML {path}: {exc}") from exc
    fallback = level if level is not None else path.stem
    return [_case(element, fallback) for element in root.iter("testcase")]


def suite_seconds(path: Path) -> float:
    """The wall time pytest reports for the run that wrote ``path`` (its test suites' ``time``)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"cannot read JUnit XML {path}: {exc}") from exc
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = 0.0
    for suite in suites:
        try:
            total += float(suite.get("time", "0") or 0)
        except ValueError:
            continue
    return total


def _case(element: ET.Element, fallback_level: str) -> CaseResult:
    classname = element.get("classname", "")
    name = element.get("name", "")
    properties = [(p.get("name", ""), p.get("value", "")) for p in element.findall("properties/property")]
    levels = [value for key, value in properties if key == LEVEL_PROPERTY]
    level = levels[0] if levels else _level_of(classname, fallback_level)
    behaviours = tuple(dict.fromkeys(value for key, value in properties if key == BEHAVIOUR_PROPERTY))
    outcome, message = Outcome.PASSED, ""
    for tag in ("failure", "error", "skipped"):
        found = element.find(tag)
        if found is not None:
            outcome = Outcome.SKIPPED if tag == "skipped" else Outcome.FAILED
            message = _first_line(found.get("message") or found.text or tag)
            break
    try:
        seconds = float(element.get("time", "0") or 0)
    except ValueError:
        seconds = 0.0
    node = f"{classname}::{name}" if classname else name
    return CaseResult(node, level, behaviours, outcome, seconds, message)


def _level_of(classname: str, fallback: str) -> str:
    parts = classname.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else fallback


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _MESSAGE_LENGTH else line[: _MESSAGE_LENGTH - 1] + "…"
