"""A caller's own count of its attempts per instance, read from its ``/metrics`` before and after a run.

The ServiceClient counts every attempt (``harness_client_calls_total{service, instance, outcome}``);
the difference of two readings is what the caller sent during the run, a second witness next to the
attempt events on the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.errors import EnvironmentUnavailable

CALLS = "harness_client_calls_total"


@dataclass(frozen=True)
class CallCounts:
    """Attempts per instance and outcome (``status_2xx``, ``timeout``, ...)."""

    counts: dict[str, dict[str, float]] = field(default_factory=dict)

    def per_instance(self) -> dict[str, int]:
        return {instance: int(sum(outcomes.values())) for instance, outcomes in sorted(self.counts.items())}

    def __sub__(self, earlier: CallCounts) -> CallCounts:
        delta: dict[str, dict[str, float]] = {}
        for instance, outcomes in self.counts.items():
            before = earlier.counts.get(instance, {})
            delta[instance] = {o: n - before.get(o, 0.0) for o, n in outcomes.items()}
        return CallCounts(delta)


def parse_calls(text: str, service: str) -> CallCounts:
    """The attempt counters towards ``service`` in a Prometheus text exposition."""
    counts: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != CALLS or sample.labels.get("service") != service:
                continue
            instance, outcome = sample.labels.get("instance", "?"), sample.labels.get("outcome", "?")
            counts.setdefault(instance, {})[outcome] = sample.value
    return CallCounts(counts)


def read_calls(base_url: str, service: str, *, timeout: float = 5.0) -> CallCounts:
    """The caller's counters now, from ``GET <base_url>/metrics``."""
    try:
        answer = httpx.get(f"{base_url.rstrip('/')}/metrics", timeout=timeout, trust_env=False)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        raise EnvironmentUnavailable(f"cannot read {base_url}/metrics: {exc}") from exc
    return parse_calls(answer.text, service)
