"""Each behaviour check fails when the behaviour it checks is broken: on a stack whose orchestrator ignores
the users' weights and has no breaker (set through the topology), the same profiles that hold on a
well-configured stack exit 1, each failure one line saying which check and by how much."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import Stack, load_topology

from .conftest import MISCONFIGURED, run


@pytest.fixture(scope="module")
def misconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(load_topology(MISCONFIGURED), tmp_path_factory.mktemp("misconfigured")) as running:
        yield running


def failed(lines: list[str], text: str) -> list[str]:
    return [line for line in lines if text in line]


class TestOnAMisconfiguredClient:
    @pytest.mark.behaviour("load.shares")
    def test_shares_that_ignore_the_weights_fail_the_shares_check_by_their_distance(
        self, misconfigured: Stack, tmp_path: Path
    ) -> None:
        """Round robin over 1:1:2: users-3 gets a third, not half; the check fails by about 12 points."""
        outcome = run("balancer-weights.toml", misconfigured, tmp_path)
        assert outcome.exit_code == 1
        [users_3] = failed(outcome.failed, "users-3 share, off its weight's share")
        assert "FAILED by" in users_3
        figure = next(
            f for s in outcome.results.sections for f in s.figures if f.name.startswith("users-3 share")
        )
        assert figure.measured is not None
        assert 0.12 <= figure.measured <= 0.22

    @pytest.mark.behaviour("load.breaker_under_fault", "client.configuration")
    def test_without_a_breaker_the_breaker_checks_fail_and_say_why(
        self, misconfigured: Stack, tmp_path: Path
    ) -> None:
        """breaker = false: nothing opens, users-2 keeps its share while slow, the others do not take over."""
        outcome = run("breaker-latency.toml", misconfigured, tmp_path)
        assert outcome.exit_code == 1
        assert failed(outcome.failed, "breaker opened during the fault: none")
        assert failed(outcome.failed, "no breaker towards users (breaker = false)")
        [share] = failed(outcome.failed, "users-2 share during the fault / before")
        assert "FAILED by" in share
        figure = next(
            f
            for s in outcome.results.sections
            for f in s.figures
            if f.name.startswith("users-2 share during")
        )
        assert figure.measured is not None
        assert figure.measured > 0.5  # it kept most of its share, where a breaker leaves it its probes only
        assert outcome.left_behind == []
