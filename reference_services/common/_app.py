"""The FastAPI base every reference service is built from: JSON errors, body guards, health and metrics.

Services add their own routers on top; what they all share (error shape, limits, observability) lives
here once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Info, generate_latest
from pydantic import BaseModel, ConfigDict

from ._errors import CatchAllMiddleware, ErrorBody, install_error_handlers
from ._guards import BodyLimitMiddleware, LoadShedMiddleware
from ._metrics import RequestMetrics, RequestMetricsMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
ReadinessCheck = Callable[[], Awaitable[Mapping[str, bool]]]


class HealthBody(BaseModel):
    """The answer of ``GET /health``."""

    model_config = ConfigDict(extra="forbid")

    status: str
    service: str


class ReadyBody(BaseModel):
    """The answer of ``GET /ready``: one boolean per dependency."""

    model_config = ConfigDict(extra="forbid")

    status: str
    service: str
    checks: dict[str, bool]


def create_service_app(
    name: str,
    *,
    max_body_bytes: int,
    metrics: CollectorRegistry,
    lifespan: Lifespan | None = None,
    version: str = "0.1.0",
    health: Callable[[], bool] | None = None,
    ready: ReadinessCheck | None = None,
    max_in_flight: int | None = None,
    shed_exempt: Collection[str] = ("/health", "/metrics"),
) -> FastAPI:
    """A FastAPI app with the shared error handling, body limit, ``/health`` and ``/metrics``.

    Middleware, outermost first: request metrics, catch-all 500, body size limit. Request metrics and a
    ``service_info`` metric are registered in ``metrics``, which ``/metrics`` exposes. ``health``, if
    given, is asked on every ``GET /health``: False answers 503 ``{"status": "unhealthy", ...}``.
    ``ready`` names the dependencies ``GET /ready`` checks (each True when reachable); any False -> 503.
    With ``max_in_flight``, requests beyond it (except ``shed_exempt`` paths) are shed: 503, Retry-After.
    """
    app = FastAPI(
        title=name,
        version=version,
        lifespan=lifespan,
        redirect_slashes=False,  # an API answers 404 for a wrong path rather than redirecting
        responses={422: {"model": ErrorBody}},
    )
    install_error_handlers(app)
    # add_middleware puts each new middleware outside the previous ones.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=RequestMetrics(metrics))
    if max_in_flight is not None:
        app.add_middleware(
            LoadShedMiddleware, max_in_flight=max_in_flight, metrics=metrics, exempt_paths=shed_exempt
        )
    Info("service", "The service this process runs.", registry=metrics).info(
        {"service": name, "version": version}
    )

    @app.get("/health", tags=["operations"], responses={503: {"model": HealthBody}})
    async def health_check(response: Response) -> HealthBody:
        """200 ``ok`` while the process serves requests and reports itself healthy, else 503."""
        if health is not None and not health():
            response.status_code = 503
            return HealthBody(status="unhealthy", service=name)
        return HealthBody(status="ok", service=name)

    @app.get("/ready", tags=["operations"], responses={503: {"model": ReadyBody}})
    async def readiness(response: Response) -> ReadyBody:
        """200 when every dependency this instance needs is reachable, else 503 naming the missing ones."""
        checks = dict(await ready()) if ready is not None else {}
        if not all(checks.values()):
            response.status_code = 503
            return ReadyBody(status="not_ready", service=name, checks=checks)
        return ReadyBody(status="ready", service=name, checks=checks)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of this process's metrics."""
        # async on purpose: collectors read service state owned by the event loop.
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return app
