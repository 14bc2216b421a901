"""The echo service: answers who served a request, and misbehaves on demand through ``/admin/faults``.

Faults are set over HTTP rather than by flags so a running instance can be degraded and restored in the
middle of an experiment, the way a real incident comes and goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field

from harness.discovery import ClientMetrics
from harness.events import EventLog
from reference_services.common import (
    NAME_PATTERN,
    JsonInteger,
    ServiceSettings,
    create_service_app,
    joined,
    require_json,
)


class EchoSettings(ServiceSettings):
    """One echo instance; ``service`` is the name it registers under."""

    instance_id: str = Field(default="echo-1", min_length=1, max_length=63, pattern=NAME_PATTERN)
    service: str = Field(default="echo", min_length=1, max_length=63, pattern=NAME_PATTERN)


class Faults(BaseModel):
    """How the instance misbehaves right now; all defaults = healthy."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: Annotated[int, Field(ge=400, le=599), JsonInteger] | None = Field(
        default=None, description="answer /echo with this status"
    )
    delay: float = Field(default=0.0, ge=0, le=60, description="seconds to wait before answering /echo")
    retry_after: float | None = Field(default=None, ge=0, le=3600, description="Retry-After on fault answers")
    healthy: bool = Field(default=True, description="false makes /health answer 503")


class EchoAnswer(BaseModel):
    """What ``/echo`` answers while healthy: who served it, and the message back."""

    model_config = ConfigDict(extra="forbid")

    instance: str
    echo: str


class InjectedFault(BaseModel):
    """What ``/echo`` answers while ``/admin/faults`` sets a status."""

    model_config = ConfigDict(extra="forbid")

    error: str = "injected_fault"
    message: str
    instance: str


class Stats(BaseModel):
    """Answer of ``GET /admin/stats``."""

    model_config = ConfigDict(extra="forbid")

    instance: str
    served: int


_FAULTY: dict[int | str, dict[str, Any]] = {
    status: {"model": InjectedFault, "description": "The status set through `PUT /admin/faults`."}
    for status in ("4XX", "5XX")
}


class _State:
    def __init__(self) -> None:
        self.faults = Faults()
        self.served = 0


def create_app(settings: EchoSettings) -> FastAPI:
    """Build one echo instance; it registers itself when ``registry_url`` is set."""
    metrics = CollectorRegistry()
    events = EventLog(settings.instance_id, settings.event_log)
    served = Counter(
        "echo_requests_total", "Echo requests answered, by status.", ["status"], registry=metrics
    )
    state = _State()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with joined(settings, settings.service, events, ClientMetrics(metrics)):
            yield
        events.close()

    app = create_service_app(
        settings.service,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        lifespan=lifespan,
        health=lambda: state.faults.healthy,
    )

    async def answer(payload: Any) -> Response:
        faults = state.faults
        state.served += 1
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.status is not None:
            headers = {"Retry-After": f"{faults.retry_after:g}"} if faults.retry_after is not None else None
            served.labels(str(faults.status)).inc()
            fault = InjectedFault(
                message=f"{settings.instance_id} is set to fail", instance=settings.instance_id
            )
            return JSONResponse(fault.model_dump(), status_code=faults.status, headers=headers)
        served.labels("200").inc()
        return JSONResponse(EchoAnswer(instance=settings.instance_id, echo=payload).model_dump())

    @app.get("/echo", response_model=EchoAnswer, responses=_FAULTY)
    async def echo_get(msg: str = "") -> Response:
        """The message back, with the id of the instance that served it."""
        return await answer(msg)

    @app.post("/echo", response_model=EchoAnswer, responses=_FAULTY)
    async def echo_post(request: Request) -> Response:
        """The body back (as text), with the id of the instance that served it."""
        body = await request.body()
        return await answer(body.decode("utf-8", errors="replace"))

    @app.get("/admin/faults")
    async def get_faults() -> Faults:
        """How the instance misbehaves right now."""
        return state.faults

    @app.put("/admin/faults", dependencies=[Depends(require_json)])
    async def set_faults(faults: Faults) -> Faults:
        """Replace the faults; the defaults (an empty object) restore a healthy instance."""
        state.faults = faults
        events.emit("echo.faults_set", instance_id=settings.instance_id, **faults.model_dump())
        return faults

    @app.get("/admin/stats")
    async def stats() -> Stats:
        """How many ``/echo`` requests this instance answered."""
        return Stats(instance=settings.instance_id, served=state.served)

    return app
