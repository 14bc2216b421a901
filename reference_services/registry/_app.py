"""The registry service: HTTP API over the membership store, plus its background checker and sweeper.

``create_app(settings)`` wires store, journal (events and metrics) and background tasks; the routes
translate store errors into the common JSON errors at this one edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.params import Depends as DependsParam
from prometheus_client import CollectorRegistry

from harness.events import EventLog
from harness.net import is_loopback_host, is_loopback_url
from reference_services.common import (
    NAME_PATTERN,
    ApiError,
    ErrorBody,
    create_service_app,
    require_json,
    stopping_event,
)

from ._access import WRITE_REFUSALS, WriteGuard
from ._checker import HealthChecker, health_check_client, sweep_forever
from ._journal import InstanceGauge, RegistryJournal
from ._models import (
    NAME_MAX_LENGTH,
    HeartbeatResponse,
    InstancesResponse,
    InstanceView,
    RegistrationRequest,
    ServicesResponse,
    ServiceSummary,
)
from ._settings import RegistrySettings
from ._store import Instance, InstanceStore, Registration, ServiceConflict, StoreFull, UnknownInstance

INDEX_HEADER = "X-Registry-Index"
MAX_WAIT = 300.0

InstanceId = Annotated[
    str, Path(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN, description="Instance id.")
]
ServiceName = Annotated[
    str, Path(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN, description="Service name.")
]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "The instance is not registered."}
}


def create_app(settings: RegistrySettings) -> FastAPI:
    """The registry app; its lifespan runs the health checker and the TTL sweeper.

    With ``settings.token`` every write needs it (and the OpenAPI says so); without, writes are open to
    any process on the machine, which the ``registry.started`` event records.
    """
    metrics = CollectorRegistry()
    events = EventLog("registry", settings.event_log)
    journal = RegistryJournal(events, metrics)
    store = InstanceStore(
        default_ttl=settings.default_ttl,
        check_failures=settings.check_failures,
        max_instances=settings.max_instances,
        listener=journal.record,
        # A restarted registry must not reuse an index a watcher saw from its predecessor: that watcher
        # would block on its stale list. Starting at the wall clock in ms keeps new indexes above old ones.
        first_index=time.time_ns() // 1_000_000,
    )
    metrics.register(InstanceGauge(store))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.emit("registry.started", writes="token" if settings.token is not None else "open")
        async with health_check_client(settings.check_timeout) as client:
            checker = HealthChecker(
                store, journal, client, interval=settings.check_interval, timeout=settings.check_timeout
            )
            tasks = [
                asyncio.create_task(checker.run(), name="registry-health-checker"),
                asyncio.create_task(sweep_forever(store), name="registry-sweeper"),
                asyncio.create_task(_close_on_stop(app, store), name="registry-stop-watch"),
            ]
            try:
                yield
            finally:
                store.close()  # wake blocked queries still waiting
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                events.close()

    app = create_service_app(
        "registry", max_body_bytes=settings.max_body_bytes, metrics=metrics, lifespan=lifespan
    )
    guard = [Depends(WriteGuard(settings.token))] if settings.token is not None else []
    app.include_router(_router(store, journal, allow_remote=settings.allow_remote, write_guard=guard))
    return app


def _router(
    store: InstanceStore, journal: RegistryJournal, *, allow_remote: bool, write_guard: list[DependsParam]
) -> APIRouter:
    """The API; ``write_guard`` (the token check, or nothing) runs first on every write route."""
    router = APIRouter(prefix="/v1", tags=["registry"])
    refusals = WRITE_REFUSALS if write_guard else {}

    def view(instance: Instance) -> InstanceView:
        return InstanceView(
            instance_id=instance.instance_id,
            service=instance.service,
            address=instance.address,
            port=instance.port,
            health_url=instance.health_url,
            metadata=dict(instance.metadata),
            weight=instance.weight,
            status=instance.status,
            registered_at=instance.registered_at,
            last_heartbeat_at=instance.last_heartbeat_at,
            expires_in=round(store.expires_in(instance), 3),
            consecutive_failures=instance.consecutive_failures,
        )

    @router.put(
        "/instances/{instance_id}",
        dependencies=[*write_guard, Depends(require_json)],
        responses={
            201: {"model": InstanceView, "description": "Registered a new instance."},
            409: {"model": ErrorBody, "description": "The id is registered for another service."},
            507: {"model": ErrorBody, "description": "The registry holds max_instances instances."},
            **refusals,
        },
    )
    async def register(
        instance_id: InstanceId, body: RegistrationRequest, response: Response
    ) -> InstanceView:
        """Register an instance (201), or refresh its registration (200); idempotent per instance id."""
        if not allow_remote:
            _refuse_remote(body.address, body.health_url)
        registration = Registration(instance_id=instance_id, **body.model_dump())
        try:
            instance, created = store.register(registration)
        except ServiceConflict as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        except StoreFull as exc:
            raise ApiError(507, "registry_full", str(exc)) from exc
        response.status_code = 201 if created else 200
        return view(instance)

    @router.delete(
        "/instances/{instance_id}",
        status_code=204,
        dependencies=write_guard,
        responses={**_NOT_FOUND, **refusals},
    )
    async def deregister(instance_id: InstanceId) -> Response:
        """Remove an instance."""
        try:
            store.deregister(instance_id)
        except UnknownInstance as exc:
            raise _not_found(exc) from exc
        return Response(status_code=204)

    @router.put(
        "/instances/{instance_id}/heartbeat", dependencies=write_guard, responses={**_NOT_FOUND, **refusals}
    )
    async def heartbeat(instance_id: InstanceId) -> HeartbeatResponse:
        """Keep an instance alive for another TTL; 404 means it must register again."""
        try:
            instance = store.heartbeat(instance_id)
        except UnknownInstance as exc:
            raise _not_found(exc) from exc
        return HeartbeatResponse(
            instance_id=instance_id, ttl=instance.ttl, expires_in=round(store.expires_in(instance), 3)
        )

    @router.get("/instances/{instance_id}", responses=_NOT_FOUND)
    async def get_instance(instance_id: InstanceId) -> InstanceView:
        """One instance, whatever its health."""
        instance = store.get(instance_id)
        if instance is None:
            raise _not_found(UnknownInstance(instance_id))
        return view(instance)

    @router.get("/services")
    async def list_services(response: Response) -> ServicesResponse:
        """Every service with at least one instance, and the global change index."""
        response.headers[INDEX_HEADER] = str(store.index)
        return ServicesResponse(
            index=store.index,
            services={
                name: ServiceSummary(instances=c.instances, healthy=c.healthy)
                for name, c in store.services().items()
            },
        )

    @router.get("/services/{service}/instances")
    async def list_instances(
        service: ServiceName,
        request: Request,
        response: Response,
        index: Annotated[
            int | None, Query(ge=0, le=2**63 - 1, description="Block while the service's index equals this.")
        ] = None,
        wait: Annotated[
            float, Query(ge=0, le=MAX_WAIT, allow_inf_nan=False, description="Longest block, in seconds.")
        ] = 30.0,
        healthy: Annotated[bool, Query(description="Passing instances only (default) or all.")] = True,
    ) -> InstancesResponse:
        """A service's instances sorted by id; with ``index``, a blocking query (like Consul's).

        An unknown service answers an empty list, so watchers can wait for it to appear.
        """
        if index is not None and index == store.service_index(service) and wait > 0:
            journal.blocking_queries.inc()
            try:
                await _wait_for_change(store, service, index, wait, request)
            finally:
                journal.blocking_queries.dec()
        current, instances = store.lookup(service, healthy_only=healthy)
        response.headers[INDEX_HEADER] = str(current)
        return InstancesResponse(service=service, index=current, instances=[view(i) for i in instances])

    return router


def _refuse_remote(address: str, health_url: str | None) -> None:
    """The registry hands addresses to clients and probes health URLs: both stay on this machine."""
    if not is_loopback_host(address):
        raise ApiError(422, "remote_address", f"Address {address!r} is not on loopback; the registry was not "
                       "started with --allow-remote.")  # fmt: skip
    if health_url is not None and not is_loopback_url(health_url):
        raise ApiError(422, "remote_address", f"Health URL {health_url!r} is not on loopback; the registry "
                       "was not started with --allow-remote.")  # fmt: skip


def _not_found(exc: UnknownInstance) -> ApiError:
    return ApiError(404, "not_found", str(exc))


async def _wait_for_change(
    store: InstanceStore, service: str, index: int, wait: float, request: Request
) -> None:
    """Block until the service changes, ``wait`` passes, the store closes, or the client goes away."""
    change = asyncio.create_task(store.wait_for_change(service, index))
    gone = asyncio.create_task(_client_gone(request))
    try:
        await asyncio.wait({change, gone}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (change, gone):
            task.cancel()
        await asyncio.gather(change, gone, return_exceptions=True)


async def _client_gone(request: Request) -> None:
    """Return when the client disconnects (a GET has no body, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _close_on_stop(app: FastAPI, store: InstanceStore) -> None:
    """Wake blocked queries as soon as a stop is requested, so they answer instead of holding shutdown."""
    await stopping_event(app).wait()
    store.close()
