"""What the contract tests share: where pacts live, run bookkeeping keys, and common matchers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pact import Pact, match
from pact.match.matcher import AbstractMatcher

REPO_ROOT = Path(__file__).resolve().parents[2]
# Another folder only for the test of the staleness check itself, which runs consumer tests on a copy.
CONTRACTS = Path(os.environ.get("HARNESS_TEST_CONTRACTS_DIR") or REPO_ROOT / "contracts")
CONSUMER_TESTS = Path(__file__).resolve().parent / "consumer"

consumer_failures = pytest.StashKey[set[str]]()
consumer_deselected = pytest.StashKey[int]()

NewPact = Callable[[str, str], Pact]

# How the services write times: ISO 8601 with microseconds and "+00:00" (Python's %:z, Java's XXX; a
# plain %z would expect "+0000").
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%:z"
# Names and ids as the services accept them in paths.
NAME_REGEX = r"[A-Za-z0-9][A-Za-z0-9._-]*"
KEY_REGEX = r"[A-Za-z0-9._:@+=~-]+"


def timestamp() -> AbstractMatcher[object]:
    """Any timestamp in the services' format."""
    return match.datetime("2024-05-01T10:00:00.123456+00:00", format=TIMESTAMP_FORMAT)


def error_body(code: str) -> dict[str, object]:
    """The services' error shape with this exact error code (consumers branch on codes, not messages)."""
    return {"error": code, "message": match.str("A sentence saying what went wrong.")}


def update_requested() -> bool:
    """``UPDATE_CONTRACTS=1``: rewrite ``contracts/`` from this run instead of failing on a difference."""
    return os.environ.get("UPDATE_CONTRACTS", "") == "1"
