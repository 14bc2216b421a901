"""Guards applied before a handler runs: a body size limit, a JSON content type, and load shedding.

The size limit is pure ASGI so it holds for every route, with or without ``Content-Length``, and never
lets more than the limit reach the application.
"""

from __future__ import annotations

import email.message
from collections.abc import Collection

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import ApiError, error_response


class BodyTooLarge(ApiError):
    """The request body is larger than the service accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "body_too_large", f"The request body exceeds the limit of {limit} bytes.")
        self.limit = limit


class BodyLimitMiddleware:
    """Answer 413 ``body_too_large`` when the body exceeds ``max_body_bytes``.

    A declared ``Content-Length`` over the limit is refused before the application runs; a streamed
    body is counted chunk by chunk and the read that crosses the limit raises ``BodyTooLarge`` (an
    HTTPException, which FastAPI's body reader lets through to the error handlers).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return

        received = 0
        started = False

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_tracking)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> ASGIApp:
    error = BodyTooLarge(limit)
    return error_response(error.status_code, error.error, error.message)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    if not content_type:
        return False
    parsed = email.message.Message()
    parsed["content-type"] = content_type
    subtype = parsed.get_content_subtype()
    return parsed.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def require_json(request: Request) -> None:
    """Route dependency: a request that carries a body must declare it as JSON (else 415)."""
    headers = request.headers
    has_body = (_content_length(headers) or 0) > 0 or "transfer-encoding" in headers
    content_type = headers.get("content-type")
    if has_body and not is_json_media_type(content_type):
        got = f"{content_type!r}" if content_type else "no Content-Type"
        raise ApiError(
            415, "unsupported_media_type", f"The request body must be sent as application/json, not {got}."
        )


class LoadShedMiddleware:
    """Answer 503 ``overloaded`` (``Retry-After: 1``) while ``max_in_flight`` requests are already in flight.

    Pure ASGI; add it last so it runs outermost and a shed request costs almost nothing: refusing early
    keeps the admitted requests fast instead of letting every request slow down together.
    ``exempt_paths`` (health and metrics) are never shed and never counted, so probes keep seeing the
    truth under overload. With ``metrics``, the in-flight gauge and the shed counter are registered there.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        exempt_paths: Collection[str] = ("/health", "/metrics"),
        metrics: CollectorRegistry | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.app = app
        self.max_in_flight = max_in_flight
        self.exempt_paths = frozenset(exempt_paths)
        self.in_flight = 0
        self._shed: Counter | None = None
        if metrics is not None:
            gauge = Gauge("http_requests_in_flight", "HTTP requests being handled now.", registry=metrics)
            gauge.set_function(lambda: self.in_flight)
            self._shed = Counter(
                "http_requests_shed",
                "Requests refused with 503 because too many were in flight.",
                registry=metrics,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            if self._shed is not None:
                self._shed.inc()
            message = f"The service is handling {self.in_flight} requests, its limit; retry shortly."
            await error_response(503, "overloaded", message, headers={"Retry-After": "1"})(
                scope, receive, send
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
