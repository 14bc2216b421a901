"""Prometheus metrics of the proxy server, named as Toxiproxy names them: cheap integer byte counters on the
data path, turned into counters per direction, proxy, listener and upstream when ``/metrics`` is read."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from harness.faults._link import ByteCounter, Direction

LABELS = ("direction", "proxy", "listener", "upstream")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ProxyByteCounters(Collector):
    """Byte counters keyed by (direction, proxy, listener, upstream), the labels Toxiproxy uses."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str, str, str], ByteCounter] = {}

    def counter(self, direction: Direction, proxy: str, listener: str, upstream: str) -> ByteCounter:
        key = (direction.name.lower(), proxy, listener, upstream)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = ByteCounter()
        return counter

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "toxiproxy_proxy_received_bytes", "Bytes read from the source of each link.", labels=LABELS
        )
        sent = CounterMetricFamily(
            "toxiproxy_proxy_sent_bytes", "Bytes written to the destination of each link.", labels=LABELS
        )
        for labels, counter in sorted(self._counters.items()):
            received.add_metric(labels, counter.received)
            sent.add_metric(labels, counter.sent)
        yield received
        yield sent


class ServerMetrics:
    """What ``/metrics`` shows: byte counters (``--proxy-metrics``), process ones (``--runtime-metrics``)."""

    def __init__(self, *, proxy_metrics: bool, runtime_metrics: bool) -> None:
        self.bytes = ProxyByteCounters()
        self.enabled = proxy_metrics or runtime_metrics
        self._registry = CollectorRegistry(auto_describe=True)
        if proxy_metrics:
            self._registry.register(self.bytes)
        if runtime_metrics:
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)

    def render(self) -> bytes:
        return generate_latest(self._registry)
