"""JSON error responses shared by every reference service, so bad input never yields a 5xx or a traceback.

Every error body has one shape: ``{"error": <snake_case code>, "message": <one sentence>}``, plus
``details`` (pydantic's ``loc``/``msg``/``type``) for validation errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._sqlite import StorageBusy

logger = logging.getLogger(__name__)

_SOURCES = {"body": "field", "query": "query parameter", "path": "path parameter", "header": "header"}
_NOT_AN_OBJECT = {"model_type", "model_attributes_type", "dict_type"}


class ErrorDetail(BaseModel):
    """One validation problem, as pydantic reports it (without echoing the input)."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="forbid")

    error: str
    message: str
    details: list[ErrorDetail] | None = None


class ApiError(HTTPException):
    """An expected failure with its own error code, e.g. ``ApiError(409, "conflict", "...")``."""

    def __init__(
        self, status_code: int, error: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status_code, detail=message, headers=headers)
        self.error = error
        self.message = message


def error_response(
    status_code: int,
    error: str,
    message: str,
    *,
    details: Sequence[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Render the common error body (or an empty response where HTTP forbids a body)."""
    if not is_body_allowed_for_status_code(status_code):
        return Response(status_code=status_code, headers=headers)
    body = ErrorBody(error=error, message=message, details=list(details) if details is not None else None)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code, headers=headers)


def error_code(status_code: int) -> str:
    """``404`` -> ``"not_found"``; unknown codes fall back to ``"http_<code>"``."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return f"http_{status_code}"
    return phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One readable sentence naming the first bad field, e.g. ``Invalid field 'port': input should ...``."""
    if not errors:
        return "The request is not valid."
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    kind = str(first.get("type", ""))
    msg = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    source = str(loc[0]) if loc else ""
    path = _field_path(loc[1:]) if source in _SOURCES else _field_path(loc)
    where = f"{_SOURCES.get(source, 'field')} {path!r}"
    if source == "body" and not path and kind == "missing":
        sentence = "The request body is required (a JSON object)."
    elif source == "body" and not path and kind in _NOT_AN_OBJECT:
        sentence = "The request body must be a JSON object."
    elif source == "body" and not path:
        sentence = f"The request body is not valid: {_lower_first(msg)}."
    elif kind == "missing":
        sentence = f"Missing required {where}."
    elif kind == "extra_forbidden":
        sentence = f"Unknown {where}; it is not part of this API."
    else:
        sentence = f"Invalid {where}: {_lower_first(msg)}."
    if len(errors) > 1:
        sentence += f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} in details.)"
    return sentence


def _field_path(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _lower_first(text: str) -> str:
    """Fit a message into a sentence: "Input should ..." -> "input should ..." (acronyms kept)."""
    text = text.rstrip(".")
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _details(errors: Sequence[Mapping[str, Any]]) -> list[ErrorDetail]:
    return [
        ErrorDetail(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "")),
            type=str(e.get("type", "")),
        )
        for e in errors
    ]


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", "not valid JSON")
        position = bad_json.get("loc", ("body", "?"))[-1]
        message = f"The request body is not valid JSON: {_lower_first(str(reason))} at position {position}."
        return error_response(400, "malformed_json", message, details=_details([bad_json]))
    return error_response(
        422, "validation_error", describe_validation_errors(errors), details=_details(errors)
    )


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.error, exc.message, headers=exc.headers)
    path = request.url.path[:200]
    headers = exc.headers
    if exc.status_code == 404 and exc.detail == HTTPStatus.NOT_FOUND.phrase:
        message = f"No route matches {request.method} {path}."
    elif exc.status_code == 405:
        allowed = allowed_methods(request)
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"} | {"Allow": allowed}
        message = f"Method {request.method} is not allowed on {path}; allowed: {allowed}."
    else:
        message = str(exc.detail).rstrip(".") + "."
    return error_response(exc.status_code, error_code(exc.status_code), message, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method a route of the app serves at this path, e.g. ``GET, HEAD, POST``.

    FastAPI makes one route per method, and the route that raises 405 names only its own methods.
    """
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):  # included routers' routes too
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation and HTTP errors, and a database too busy to answer, with the common JSON body."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(StorageBusy, _on_storage_busy)


async def _on_storage_busy(request: Request, exc: Exception) -> Response:
    return error_response(
        503, "storage_busy", "The database is busy; retry shortly.", headers={"Retry-After": "1"}
    )


class CatchAllMiddleware:
    """Pure ASGI: an unexpected exception becomes a logged 500 JSON answer, never an HTML traceback.

    It sits inside the metrics middleware, so the 500 is counted, and it does not re-raise, so the
    traceback is logged once, here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # too late for a clean answer: let the server drop the connection
            response = error_response(500, "internal_error", "The service failed to handle the request.")
            await response(scope, receive, send)
