"""Marks each test with its pyramid level, taken from its folder, and rejects tests outside the levels."""

from __future__ import annotations

from pathlib import Path

import pytest

LEVELS = ("unit", "integration", "contract", "fuzz", "chaos", "load", "e2e")
TESTS_ROOT = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(TESTS_ROOT.resolve())
        level = relative.parts[0] if len(relative.parts) > 1 else ""
        if level not in LEVELS:
            raise pytest.UsageError(f"{relative}: tests must live in one of tests/{{{','.join(LEVELS)}}}/")
        item.add_marker(getattr(pytest.mark, level))
