"""Balancer shares and breakers judged under load on a well-configured stack: every check holds, judged from
the caller's own events, with its /metrics counters as a second witness."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.stack import Stack

from .conftest import run


@pytest.mark.behaviour("load.shares", "load.thresholds", "balancer.weights")
class TestBalancerShares:
    def test_orders_spread_over_the_users_instances_by_their_weights(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """Weights 1:1:2: the orchestrator's attempts are 25/25/50% within 5 points, from its own events."""
        outcome = run("balancer-weights.toml", stack, tmp_path)
        assert outcome.exit_code == 0, outcome.failed
        shares = {e.instance: e.share for e in outcome.results.evidence}
        assert abs(shares["users-3"] - 0.5) <= 0.05, shares
        assert abs(shares["users-1"] - 0.25) <= 0.05, shares
        assert all(e.metrics_attempts == e.attempts for e in outcome.results.evidence), (
            outcome.results.evidence
        )


@pytest.mark.behaviour(
    "load.breaker_under_fault",
    "load.open_breaker_calls",
    "breaker.opens",
    "breaker.half_open_probes",
    "breaker.closes",
    "balancer.skips_open_breakers",
)
class TestBreakerUnderLoad:
    def test_latency_on_one_instance_opens_its_breaker_shifts_the_load_and_closes_it(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """3 s latency on users-2 from 3 s to 11 s: opens within its bounds, probes only while open, others
        absorb the orders, closed and back to its weight's share after the fault."""
        outcome = run("breaker-latency.toml", stack, tmp_path)
        assert outcome.exit_code == 0, outcome.failed
        [breaker] = [s for s in outcome.results.sections if s.title.startswith("Breaker of orchestrator-1")]
        names = [f.name for f in breaker.figures]
        assert "failed calls before OPEN" in names
        assert "calls reaching the instance while OPEN" in names
        assert "seconds from fault end to CLOSED" in names
        assert outcome.results.faults == [f for f in outcome.results.faults if f.startswith("slow-users-2:")]
        assert outcome.left_behind == []
        toxiproxy = stack.toxiproxy
        assert toxiproxy is not None
        assert toxiproxy.toxics("users-2") == []
