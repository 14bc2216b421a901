"""The public API of harness.resilience: the exported names, so a change to it is a deliberate one."""

from __future__ import annotations

import harness.resilience


def test_exported_names() -> None:
    """__all__ lists exactly the public names, plainly sorted, and each of them resolves."""
    assert harness.resilience.__all__ == sorted(
        [
            "BALANCER_NAMES",
            "Balancer",
            "BreakerConfig",
            "BreakerOpen",
            "BreakerSnapshot",
            "BreakerState",
            "BreakerTransition",
            "Bulkhead",
            "Candidate",
            "CircuitBreaker",
            "Clock",
            "Deadline",
            "IDEMPOTENT_METHODS",
            "LeastOutstanding",
            "ManualClock",
            "Permit",
            "RandomBalancer",
            "RetryBudget",
            "RetryBudgetSnapshot",
            "RetryPolicy",
            "RoundRobin",
            "SystemClock",
            "WeightedRoundRobin",
            "choose",
            "make_balancer",
            "parse_retry_after",
        ]
    )
    for name in harness.resilience.__all__:
        assert getattr(harness.resilience, name) is not None
