"""Contract level: pact-python consumer tests (``consumer/``) and provider verification (``provider/``).

The verifier never phones home here (``PACT_DO_NOT_TRACK``), and consumer test outcomes are recorded so the
staleness check of ``contracts/`` knows whether the run was complete.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from ._support import CONSUMER_TESTS, consumer_deselected, consumer_failures


def _is_consumer_test(path: Path) -> bool:
    return path.resolve().is_relative_to(CONSUMER_TESTS)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[consumer_failures] = set()
    config.stash[consumer_deselected] = 0


def pytest_deselected(items: list[pytest.Item]) -> None:
    if not items:
        return
    config = items[0].config
    if consumer_deselected in config.stash:
        config.stash[consumer_deselected] += sum(_is_consumer_test(Path(str(i.path))) for i in items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _is_consumer_test(Path(str(item.path))) and consumer_failures in item.config.stash:
        item.config.stash[consumer_failures].add(item.nodeid)
    return report


@pytest.fixture(scope="session", autouse=True)
def _pact_does_not_track() -> Iterator[None]:
    """The pact verifier pings an analytics service unless told not to."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PACT_DO_NOT_TRACK", "true")
        yield
