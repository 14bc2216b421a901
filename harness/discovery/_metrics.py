"""Prometheus metrics of ServiceClient calls, breakers and retries, in a registry the caller owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BREAKER_STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2, "off": -1}


class ClientMetrics:
    """The metric families one or more ServiceClients write to; pass the service's registry to expose them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.calls = Counter(
            "harness_client_calls_total",
            "Attempts sent to an instance, by outcome.",
            ["service", "instance", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "harness_client_attempt_seconds",
            "Duration of one attempt against one instance.",
            ["service", "instance"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "harness_client_breaker_state",
            "Breaker state per instance: 0 closed, 1 open, 2 half-open, -1 off (the client has no breaker).",
            ["service", "instance"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "harness_client_breaker_transitions_total",
            "Breaker transitions per instance, by the state entered.",
            ["service", "instance", "to_state"],
            registry=self.registry,
        )
        self.retries = Counter(
            "harness_client_retries_total", "Retries sent, by service.", ["service"], registry=self.registry
        )
        self.rejections = Counter(
            "harness_client_rejections_total",
            "Calls refused before reaching the network, by reason.",
            ["service", "reason"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "harness_client_in_flight", "Calls in flight, by service.", ["service"], registry=self.registry
        )
