"""The saga orchestrator service: POST /orders runs the order saga; a recovery loop finishes the rest.

Each saga is driven by one task until it is final, resting a backoff between passes that had to wait (a
participant that did not answer clearly). On start, and then every ``recovery_interval``, every saga that
is not final and has no task (after a crash, or a task that failed) gets one, so a crash or a participant
outage never leaves one stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Response
from prometheus_client import CollectorRegistry, Counter, Gauge

from harness.discovery import ClientMetrics
from harness.events import EventLog
from reference_services.common import (
    NAME_PATTERN,
    ApiError,
    ErrorBody,
    Peers,
    StorageBusy,
    create_service_app,
    joined,
    require_json,
    stopping_event,
)

from ._log import IdempotencyConflict, Order, SagaLog, SagaState
from ._models import OrderList, OrderRequest, OrderView
from ._participants import HttpParticipants
from ._saga import SagaDriver
from ._settings import OrchestratorSettings

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=128)]
OrderId = Annotated[str, Path(min_length=1, max_length=64)]


class _Sagas:
    """Drives sagas so that no saga is driven twice at once in this process."""

    def __init__(self, driver: SagaDriver, finished: Counter, unfinished: Gauge, stalled: Gauge) -> None:
        self.driver = driver
        self.finished = finished
        self.unfinished = unfinished
        self.stalled = stalled
        self.active: dict[str, asyncio.Task[None]] = {}

    def start(self, order_id: str) -> asyncio.Task[None]:
        task = self.active.get(order_id)
        if task is None:
            task = asyncio.create_task(self._drive(order_id), name=f"saga-{order_id}")
            self.active[order_id] = task
        return task

    async def _drive(self, order_id: str) -> None:
        try:
            order = await self.driver.run(order_id)
            self.finished.labels(order.state.value).inc()
        except Exception as exc:  # the saga log holds where it stopped; the recovery loop tries again
            self.driver.events.emit("saga.drive_failed", order_id=order_id, error=repr(exc))
        finally:
            self.active.pop(order_id, None)

    async def recover_forever(self, interval: float, stopping: asyncio.Event) -> None:
        """Every ``interval``: drive every unfinished saga, and refresh the gauges of the log."""
        while not stopping.is_set():
            try:
                unfinished = await self.driver.log.unfinished()
                counts = await self.driver.log.counts()
            except StorageBusy:  # the log is locked for long: try again next round
                unfinished, counts = [], None
            for order_id in unfinished:
                self.start(order_id)
            if counts is not None:
                self.unfinished.set(len(unfinished))
                self.stalled.set(counts.get(SagaState.NEEDS_ATTENTION, 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)

    async def stop(self) -> None:
        for task in list(self.active.values()):
            task.cancel()
        await asyncio.gather(*self.active.values(), return_exceptions=True)


def create_app(settings: OrchestratorSettings) -> FastAPI:
    """Build one orchestrator instance over its saga log."""
    metrics = CollectorRegistry()
    events = EventLog(settings.instance_id, settings.event_log)
    log = SagaLog(settings.database)
    finished = Counter(
        "saga_finished_total",
        "Sagas that reached a final state (COMPLETED, COMPENSATED or NEEDS_ATTENTION).",
        ["state"],
        registry=metrics,
    )
    unfinished = Gauge(
        "saga_unfinished",
        "Sagas still moving on by themselves (as of the last recovery round).",
        registry=metrics,
    )
    stalled = Gauge(
        "saga_needs_attention",
        "Sagas a participant refused where nothing may be undone; they wait for an operator (as of the last "
        "recovery round).",
        registry=metrics,
    )
    holder: dict[str, _Sagas] = {}
    joined_peers: list[Peers] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await log.open()
        try:
            async with joined(settings, "orchestrator", events, ClientMetrics(metrics)) as peers:
                joined_peers[:] = [peers]
                # Configured by settings.clients (the topology) over the defaults in harness.settings.
                participants = HttpParticipants(peers.client("users"), peers.client("notifications"))
                driver = SagaDriver(log, participants, events, step_deadline=settings.step_deadline)
                sagas = holder["sagas"] = _Sagas(driver, finished, unfinished, stalled)
                recovery = asyncio.create_task(
                    sagas.recover_forever(settings.recovery_interval, stopping_event(app)),
                    name="saga-recovery",
                )
                try:
                    yield
                finally:
                    recovery.cancel()
                    await asyncio.gather(recovery, return_exceptions=True)
                    await sagas.stop()
        finally:
            joined_peers.clear()
            await log.close()
            events.close()

    async def ready() -> dict[str, bool]:
        checks = {"saga_log": await log.healthy()}
        if joined_peers:
            checks.update(await joined_peers[0].reachable("users", "notifications"))
        return checks

    app = create_service_app(
        "orchestrator",
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        lifespan=lifespan,
        ready=ready,
        max_in_flight=settings.max_in_flight,
    )
    router = APIRouter(tags=["orders"])
    not_found: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}

    @router.post(
        "/orders",
        status_code=201,
        dependencies=[Depends(require_json)],
        responses={200: {"model": OrderView}, 202: {"model": OrderView}, 409: {"model": ErrorBody}},
    )
    async def place_order(body: OrderRequest, key: IdempotencyKey, response: Response) -> OrderView:
        """Run the order saga; 201 with the outcome, 200 for a replayed key, 202 if still running."""
        try:
            order, created = await log.create_order(key, body.user_id, body.amount)
        except IdempotencyConflict as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from exc
        current = order if order.state.final else await _drive_for(order.order_id)
        response.status_code = 202 if not current.state.final else (201 if created else 200)
        return OrderView.of(current, await log.steps(order.order_id))

    async def _drive_for(order_id: str) -> Order:
        """Drive the saga and wait up to the saga deadline for it to become final; the order then."""
        task = holder["sagas"].start(order_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), settings.saga_deadline)
        current = await log.get(order_id)
        assert current is not None
        return current

    @router.post("/orders/{order_id}/resume", responses={**not_found, 202: {"model": OrderView}})
    async def resume_order(order_id: OrderId, response: Response) -> OrderView:
        """Send a NEEDS_ATTENTION saga on from where it stalled, with a fresh step deadline (idempotent).

        For an operator who fixed the cause (a participant back, a conflicting record removed). A saga
        in any other state is returned as it is; 202 when it is still running after the saga deadline."""
        order = await log.resume(order_id)
        if order is None:
            raise ApiError(404, "not_found", f"Order {order_id!r} does not exist.")
        if not order.state.final:
            order = await _drive_for(order_id)
        response.status_code = 200 if order.state.final else 202
        return OrderView.of(order, await log.steps(order_id))

    @router.get("/orders/{order_id}", responses=not_found)
    async def get_order(order_id: OrderId) -> OrderView:
        """The saga's state and its step history."""
        order = await log.get(order_id)
        if order is None:
            raise ApiError(404, "not_found", f"Order {order_id!r} does not exist.")
        return OrderView.of(order, await log.steps(order_id))

    @router.get("/orders")
    async def list_orders(
        state: SagaState | None = None,
        user_id: Annotated[str | None, Query(min_length=1, max_length=63, pattern=NAME_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> OrderList:
        """Orders, optionally of one state or user, with counts by state."""
        orders = await log.orders(state=state, user_id=user_id, limit=limit)
        return OrderList(orders=[OrderView.of(o) for o in orders], counts=await log.counts())

    app.include_router(router)
    return app
