"""The load level: shipped profiles run for real with Locust in a subprocess, on one stack the level shares
(users weighted 1:1:2, the orchestrator balancing by weight, every other setting as built in)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.load import LoadOutcome, run_load
from harness.stack import Stack, load_topology
from harness.testing import require_conclusive
from tests._children import child_env

PROFILES = Path(__file__).parents[2] / "load_profiles"
WEIGHTED = PROFILES / "topologies" / "weighted.toml"
MISCONFIGURED = PROFILES / "topologies" / "misconfigured.toml"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The level's stack, started once (a `harness load run --attach` can use its workdir too)."""
    with Stack(load_topology(WEIGHTED), tmp_path_factory.mktemp("load-stack")) as running:
        yield running


def run(profile: str, stack: Stack, report: Path, **options: object) -> LoadOutcome:
    """Run a shipped profile on ``stack`` and print every figure (the evidence next to its bound)."""
    outcome = run_load(PROFILES / profile, report_dir=report, stack=stack, progress=print, **options)  # type: ignore[arg-type]
    for section in outcome.results.sections:
        print(section.title)
        for figure in section.figures:
            print(f"  {figure.line()}")
    print(f"exit {outcome.exit_code}; failed: {outcome.failed}; inconclusive: {outcome.inconclusive}")
    require_conclusive(outcome.exit_code, "; ".join(outcome.inconclusive))
    return outcome


def harness(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """The ``harness`` command as a user runs it; its output is printed for the test's log."""
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        env={**os.environ, **child_env()},
    )
    print(done.stdout, done.stderr)
    return done
