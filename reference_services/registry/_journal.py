"""Turns membership changes and health-check results into events (JSON lines) and Prometheus metrics.

The store reports every change to ``RegistryJournal.record``; the gauge of instances is read from the
store at scrape time, so it can never drift from the truth or keep series of vanished services.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from harness.events import EventLog

from ._store import Change, ChangeKind, HealthStatus, InstanceStore


class CheckResult(StrEnum):
    """How one active health check ended (a bounded label set)."""

    PASSING = "passing"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    ERROR = "error"


class RegistryJournal:
    """Events and counters for the registry; ``record`` is the store's change listener."""

    def __init__(self, events: EventLog, metrics: CollectorRegistry) -> None:
        self.events = events
        self._registrations = Counter(
            "registry_registrations",
            "Registrations, new or refreshing an existing one.",
            ["kind"],
            registry=metrics,
        )
        self._removals = Counter(
            "registry_removals",
            "Instances removed, by reason (deregistered, expired, evicted).",
            ["reason"],
            registry=metrics,
        )
        self._transitions = Counter(
            "registry_health_transitions",
            "Health status changes, by new status.",
            ["status"],
            registry=metrics,
        )
        self._checks = Counter(
            "registry_health_checks", "Active health checks, by result.", ["result"], registry=metrics
        )
        self.blocking_queries = Gauge(
            "registry_blocking_queries", "Blocking queries currently waiting for a change.", registry=metrics
        )
        for kind in ("new", "refresh"):
            self._registrations.labels(kind)
        for kind in (ChangeKind.DEREGISTERED, ChangeKind.EXPIRED, ChangeKind.EVICTED):
            self._removals.labels(kind.value)
        for status in HealthStatus:
            self._transitions.labels(status.value)
        for result in CheckResult:
            self._checks.labels(result.value)

    def record(self, change: Change) -> None:
        """Write ``registry.<kind>`` and count it."""
        instance = change.instance
        self.events.emit(
            f"registry.{change.kind.value}",
            instance_id=instance.instance_id,
            service=instance.service,
            reason=change.reason,
            status=instance.status.value,
            address=instance.address,
            port=instance.port,
            index=change.index,
        )
        match change.kind:
            case ChangeKind.REGISTERED:
                self._registrations.labels("new").inc()
            case ChangeKind.REREGISTERED:
                self._registrations.labels("refresh").inc()
            case ChangeKind.HEALTH_CHANGED:
                self._transitions.labels(instance.status.value).inc()
            case ChangeKind.DEREGISTERED | ChangeKind.EXPIRED | ChangeKind.EVICTED:
                self._removals.labels(change.kind.value).inc()

    def check_done(self, result: CheckResult) -> None:
        """Count one finished health check."""
        self._checks.labels(result.value).inc()


class InstanceGauge(Collector):
    """``registry_instances{service, status}``, read from the store when scraped."""

    def __init__(self, store: InstanceStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "registry_instances",
            "Registered instances by service and health status.",
            labels=["service", "status"],
        )
        for service, counts in self._store.services().items():
            family.add_metric([service, HealthStatus.PASSING.value], counts.healthy)
            family.add_metric([service, HealthStatus.CRITICAL.value], counts.instances - counts.healthy)
        yield family
