"""Test support for teams that run the harness from pytest: an inconclusive run fails the test, visibly so.

An inconclusive run proved nothing either way: in a test it must not pass (it would hide a broken system on
a machine too busy to tell) and must not count as a deviation (``harness pyramid --mutants`` does not
count it as catching a seeded bug, by the mark the failure message carries).
"""

from __future__ import annotations

import pytest

from harness.verdict import INCONCLUSIVE_MARK, ExitCode


def require_conclusive(exit_code: int, why: str) -> None:
    """Fail the calling test, marked inconclusive, when a run ended with exit code 4."""
    if exit_code == ExitCode.INCONCLUSIVE:
        pytest.fail(f"{INCONCLUSIVE_MARK} {why}", pytrace=False)
