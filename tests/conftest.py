"""Marks each test with its pyramid level, taken from its folder, and rejects tests outside the levels; checks
the behaviours a test declares (``@pytest.mark.behaviour``) against the catalogue and writes them, with the
level, into the test's JUnit XML properties, which ``harness pyramid`` reads; and fails a session that leaves
a process, port, fault, temporary file or child's warning behind (``tests/_leftovers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.pyramid import MARKER, MARKER_HELP, behaviours_of, junit_properties
from tests._leftovers import SessionHygiene

LEVELS = ("unit", "integration", "contract", "fuzz", "chaos", "load", "e2e")
TESTS_ROOT = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    registered = {line.split(":")[0].strip() for line in config.getini("markers")}
    for level in LEVELS:  # the marks given below, registered here too where pyproject.toml's list is not
        if level not in registered:
            config.addinivalue_line("markers", f"{level}: a test in tests/{level}/ (marked by its folder)")
    config.pluginmanager.register(SessionHygiene(), "harness-session-hygiene")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(TESTS_ROOT.resolve())
        level = relative.parts[0] if len(relative.parts) > 1 else ""
        if level not in LEVELS:
            raise pytest.UsageError(f"{relative}: tests must live in one of tests/{{{','.join(LEVELS)}}}/")
        item.add_marker(getattr(pytest.mark, level))
        marks = [(mark.args, mark.kwargs) for mark in item.iter_markers(MARKER)]
        callspec = getattr(item, "callspec", None)
        try:
            held = behaviours_of(marks, callspec.id if callspec is not None else None)
        except HarnessError as exc:
            raise pytest.UsageError(f"{item.nodeid}: {exc}") from exc
        item.user_properties.extend(junit_properties(level, held))
