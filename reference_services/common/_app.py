"""The FastAPI base every reference service is built from: JSON errors, body guards, health and metrics.

Services add their own routers on top; what they all share (error shape, limits, observability) lives
here once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

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


Answers = dict[int | str, dict[str, Any]]

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_BODY_ANSWERS = {
    "400": "The body is not valid JSON (`malformed_json`) or cannot be read (`bad_request`).",
    "413": "The body exceeds the service's limit (`body_too_large`).",
    "415": "The body is not sent as `application/json` (`unsupported_media_type`).",
}
_BUSY = "Too many requests in flight (`overloaded`) or the database is busy (`storage_busy`); retry later."


class _ServiceApp(FastAPI):
    """A FastAPI app whose OpenAPI also documents what the shared base answers, operation by operation.

    FastAPI documents only a route's own answers and 422. A client reading the spec must also learn of
    the 400/413/415 that the body guards give wherever a JSON body is taken, and of load shedding's 503.
    """

    def __init__(self, *, shed_paths: Callable[[str], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shed_paths = shed_paths

    def openapi(self) -> dict[str, Any]:
        spec = super().openapi()  # cached by FastAPI: documenting twice changes nothing
        for path, operations in spec.get("paths", {}).items():
            for operation in operations.values():
                answers = operation.setdefault("responses", {})
                if "application/json" in operation.get("requestBody", {}).get("content", {}):
                    for status, description in _BODY_ANSWERS.items():
                        answers.setdefault(status, {"description": description, "content": _ERROR_BODY})
                if self._shed_paths(path):
                    answers.setdefault(
                        "503", {"description": _BUSY, "headers": _RETRY_AFTER, "content": _ERROR_BODY}
                    )
        return spec


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
    exempt = frozenset(shed_exempt)

    def shed(path: str) -> bool:
        return max_in_flight is not None and path not in exempt

    app = _ServiceApp(
        title=name,
        version=version,
        lifespan=lifespan,
        redirect_slashes=False,  # an API answers 404 for a wrong path rather than redirecting
        responses={
            422: {"model": ErrorBody, "description": "The request is not valid (`validation_error`)."}
        },
        shed_paths=shed,
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

    @app.get("/health", tags=["operations"], responses=_probe_answers(HealthBody, shed("/health")))
    async def health_check(response: Response) -> HealthBody:
        """200 ``ok`` while the process serves requests and reports itself healthy, else 503."""
        if health is not None and not health():
            response.status_code = 503
            return HealthBody(status="unhealthy", service=name)
        return HealthBody(status="ok", service=name)

    @app.get("/ready", tags=["operations"], responses=_probe_answers(ReadyBody, shed("/ready")))
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


def _probe_answers(body: type[BaseModel], shed: bool) -> Answers:
    """A probe answers 503 with its own body, and with the error body when load shedding refused it."""
    if not shed:
        return {503: {"model": body}}
    either: Any = body | ErrorBody
    return {503: {"model": either, "description": "Not ok, or shed under load.", "headers": _RETRY_AFTER}}
