"""Client-side resilience patterns: circuit breaker, balancers, retry policy and budget, bulkhead, deadline.

A pure core: time comes from a `Clock` and randomness from a passed `random.Random`, so every behaviour
can be tested without sockets or sleeps. ServiceClient (harness.discovery) composes them around real calls.
"""

from harness.resilience._balancers import (
    BALANCER_NAMES,
    Balancer,
    Candidate,
    LeastOutstanding,
    RandomBalancer,
    RoundRobin,
    WeightedRoundRobin,
    choose,
    make_balancer,
)
from harness.resilience._breaker import (
    BreakerConfig,
    BreakerOpen,
    BreakerSnapshot,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    Permit,
)
from harness.resilience._bulkhead import Bulkhead
from harness.resilience._clock import Clock, ManualClock, SystemClock
from harness.resilience._deadline import Deadline
from harness.resilience._retry import (
    IDEMPOTENT_METHODS,
    RetryBudget,
    RetryBudgetSnapshot,
    RetryPolicy,
    parse_retry_after,
)

# Plainly sorted (not isort-style) so the API test can compare it with sorted().
__all__ = [  # noqa: RUF022
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
