"""Request metrics for every reference service: a counter and a latency histogram per route template.

Routes are labelled by their template (``/v1/instances/{instance_id}``), never the raw path, and
unknown methods are folded into ``OTHER``, so label cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Long upper buckets: blocking queries legitimately hold a request for up to minutes.
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class RequestMetrics:
    """The request counter and histogram, registered once in the service's CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route", "status")
        self.requests = Counter("http_requests", "HTTP requests handled.", labels, registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, until the response is complete.",
            labels,
            registry=registry,
            buckets=_BUCKETS,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)


class RequestMetricsMiddleware:
    """Pure ASGI: count every HTTP request and observe its duration by method, route and status."""

    def __init__(self, app: ASGIApp, *, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the application fails before answering

        async def send_tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        finally:
            method = scope.get("method", "")
            route = getattr(scope.get("route"), "path", None)
            self.metrics.observe(
                method if method in _METHODS else "OTHER",
                route if isinstance(route, str) else UNMATCHED_ROUTE,
                status,
                time.perf_counter() - started,
            )
