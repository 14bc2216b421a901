"""Fuzz-level fixtures: the ledger of every service's run, printed at the end as the figures for the docs."""

from __future__ import annotations

import pytest

from tests.fuzz._fuzz import FuzzRun

_RUNS = pytest.StashKey[list[FuzzRun]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RUNS] = []


@pytest.fixture(scope="session")
def fuzz_runs(request: pytest.FixtureRequest) -> list[FuzzRun]:
    """Every service's FuzzRun, in the order they ran."""
    return request.config.stash[_RUNS]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    runs = config.stash.get(_RUNS, [])
    if not runs:
        return
    terminalreporter.section("fuzz: operations, examples and failures per service")
    for run in runs:
        terminalreporter.write_line(run.summary())
        for line in run.report().splitlines()[1:]:
            terminalreporter.write_line(line)
