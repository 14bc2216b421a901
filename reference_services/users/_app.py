"""The users service: users with a credit balance, idempotent credit reservations, and a transactional outbox.

``create_app(settings)`` wires the database, the relay and the routes; store errors become the common
JSON errors at one edge, ``_error_response``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi import Path as PathParam
from prometheus_client import CollectorRegistry, Counter

from harness.discovery import ClientMetrics, ServiceClient
from harness.events import EventLog
from reference_services.common import (
    NAME_PATTERN,
    Database,
    ErrorBody,
    Peers,
    StorageBusy,
    create_service_app,
    error_response,
    exempt_paths,
    joined,
    require_json,
)

from ._models import (
    KEY_MAX_LENGTH,
    KEY_PATTERN,
    USER_ID_MAX_LENGTH,
    CreateUser,
    InsufficientCreditBody,
    ReservationList,
    ReservationView,
    ReserveRequest,
    UserView,
)
from ._outbox import OUTBOX_SCHEMA, Outbox
from ._outbox_api import outbox_router
from ._provider_states import router as provider_states_router
from ._relay import OutboxRelay, RelayMetrics
from ._settings import UsersSettings
from ._store import (
    USERS_SCHEMA,
    IdempotencyConflict,
    InsufficientCredit,
    InvalidState,
    NewUser,
    ReleaseResult,
    Reservation,
    ReservationReleased,
    StoreError,
    UnknownReservation,
    UnknownUser,
    User,
    UserExists,
    UsersStore,
)

logger = logging.getLogger(__name__)

SERVICE = "users"

UserId = Annotated[
    str,
    PathParam(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=NAME_PATTERN, description="User id."),
]
ReservationId = Annotated[
    str,
    PathParam(min_length=1, max_length=KEY_MAX_LENGTH, pattern=KEY_PATTERN, description="Reservation id."),
]


# A reserve can be refused for want of credit (a body that says how much is available) or for its id.
_RESERVE_CONFLICT: Any = InsufficientCreditBody | ErrorBody


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


class _Runtime:
    """What exists only while the app runs: the peers of the registry membership."""

    peers: Peers | None = None

    def notifications(self) -> ServiceClient:
        if self.peers is None:
            raise RuntimeError("the users service is not running")
        return self.peers.client("notifications")  # configured by settings.clients (harness.settings)


def create_app(settings: UsersSettings) -> FastAPI:
    """One users instance; instances of a stack share ``settings.database`` and each runs a relay."""
    metrics = CollectorRegistry()
    events = EventLog(settings.instance_id, settings.event_log)
    db = Database(settings.database, USERS_SCHEMA + OUTBOX_SCHEMA, name=f"{settings.instance_id}-db")
    store = UsersStore(db)
    outbox = Outbox(db)
    runtime = _Runtime()
    relay = OutboxRelay(
        outbox,
        runtime.notifications,
        owner=settings.instance_id,
        interval=settings.outbox_interval,
        events=events,
        metrics=RelayMetrics(metrics),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await db.open()
        try:
            async with joined(settings, SERVICE, events, ClientMetrics(metrics)) as peers:
                runtime.peers = peers
                task = asyncio.create_task(relay.run(), name="users-outbox-relay")
                try:
                    yield
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    runtime.peers = None
                    # Rows this instance was sending go back to the pool now rather than when leases end.
                    try:
                        await outbox.release_leases(settings.instance_id)
                    except StorageBusy:  # the leases run out by themselves; shutting down matters more
                        logger.warning("could not release outbox leases on shutdown")
        finally:
            await db.close()
            events.close()

    async def ready() -> dict[str, bool]:
        # Only the database: while notifications is down the outbox keeps events until it is back.
        return {"database": await db.reachable()}

    app = create_service_app(
        SERVICE,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        lifespan=lifespan,
        ready=ready,
        max_in_flight=settings.max_in_flight,
        shed_exempt=exempt_paths(settings.test_mode),
    )
    app.add_exception_handler(StoreError, _error_response)
    app.include_router(_router(store, relay, events, metrics))
    app.include_router(outbox_router(outbox, relay, events))
    if settings.test_mode:  # contract verification only: never mounted in a normal run
        app.include_router(provider_states_router(store, app))
    return app


_STATUS: dict[type[StoreError], tuple[int, str]] = {
    UnknownUser: (404, "not_found"),
    UnknownReservation: (404, "not_found"),
    UserExists: (409, "conflict"),
    IdempotencyConflict: (409, "idempotency_conflict"),
    ReservationReleased: (409, "reservation_released"),
    InvalidState: (409, "invalid_state"),
}


async def _error_response(request: Request, exc: Exception) -> Response:
    if isinstance(exc, InsufficientCredit):
        body = InsufficientCreditBody(message=str(exc), available=exc.available)
        return Response(body.model_dump_json(), status_code=409, media_type="application/json")
    status, code = next((v for k, v in _STATUS.items() if isinstance(exc, k)), (409, "conflict"))
    return error_response(status, code, str(exc))


def _user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        name=user.name,
        email=user.email,
        credit=user.credit,
        reserved=user.reserved,
        available=user.available,
        created_at=user.created_at,
    )


def _reservation_view(reservation: Reservation) -> ReservationView:
    return ReservationView(
        reservation_id=reservation.reservation_id,
        user_id=reservation.user_id,
        amount=reservation.amount,
        status=reservation.status,
        order_id=reservation.order_id,
        created_at=reservation.created_at,
    )


def _router(store: UsersStore, relay: OutboxRelay, events: EventLog, metrics: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["users"])
    created_total = Counter("users_created", "Users created.", registry=metrics)
    reservations_total = Counter(
        "users_reservations",
        "Reservation calls that succeeded, by action and result (applied, replayed, tombstone).",
        ["action", "result"],
        registry=metrics,
    )

    @router.post(
        "/users",
        status_code=201,
        dependencies=[Depends(require_json)],
        responses=_responses(409),
    )
    async def create_user(body: CreateUser) -> UserView:
        """Create a user; its ``user.created`` event is stored in the same transaction (the outbox)."""
        event_id = str(uuid.uuid4())
        user = await store.create_user(NewUser(body.id, body.name, body.email, body.credit), event_id)
        created_total.inc()
        events.emit("users.created", user_id=user.id, event_id=event_id, credit=user.credit)
        relay.wake()
        return _user_view(user)

    @router.get("/users/{user_id}", responses=_responses(404))
    async def get_user(user_id: UserId) -> UserView:
        """A user with its credit, reserved and available amounts."""
        return _user_view(await store.get_user(user_id))

    @router.post(
        "/users/{user_id}/reservations",
        status_code=201,
        dependencies=[Depends(require_json)],
        responses={
            200: {"model": ReservationView, "description": "A replay: the reservation made earlier."},
            409: {
                "model": _RESERVE_CONFLICT,
                "description": "Insufficient credit (with the amount available), or the reservation id is "
                "taken by another user or order (`idempotency_conflict`) or was released "
                "(`reservation_released`).",
            },
            **_responses(404),
        },
    )
    async def reserve(user_id: UserId, body: ReserveRequest, response: Response) -> ReservationView:
        """Reserve credit (201); the same ``reservation_id`` again answers the first reservation (200)."""
        reservation, created = await store.reserve(user_id, body.reservation_id, body.amount, body.order_id)
        response.status_code = 201 if created else 200
        reservations_total.labels("reserve", "applied" if created else "replayed").inc()
        events.emit(
            "users.reserved",
            user_id=user_id,
            reservation_id=reservation.reservation_id,
            amount=reservation.amount,
            order_id=reservation.order_id,
            replayed=not created,
        )
        return _reservation_view(reservation)

    @router.post("/users/{user_id}/reservations/{reservation_id}/confirm", responses=_responses(404, 409))
    async def confirm(user_id: UserId, reservation_id: ReservationId) -> ReservationView:
        """Confirm a reservation (idempotent); a released one cannot be confirmed."""
        reservation, changed = await store.confirm(user_id, reservation_id)
        reservations_total.labels("confirm", "applied" if changed else "replayed").inc()
        events.emit(
            "users.confirmed",
            user_id=user_id,
            reservation_id=reservation_id,
            amount=reservation.amount,
            changed=changed,
        )
        return _reservation_view(reservation)

    @router.post("/users/{user_id}/reservations/{reservation_id}/release", responses=_responses(404, 409))
    async def release(user_id: UserId, reservation_id: ReservationId) -> ReservationView:
        """Release a reservation (idempotent); an unknown id is kept as released, so a late reserve fails."""
        reservation, result = await store.release(user_id, reservation_id)
        label = {ReleaseResult.RELEASED: "applied", ReleaseResult.ALREADY_RELEASED: "replayed"}
        reservations_total.labels("release", label.get(result, "tombstone")).inc()
        events.emit(
            "users.released",
            user_id=user_id,
            reservation_id=reservation_id,
            amount=reservation.amount,
            result=result.value,
        )
        return _reservation_view(reservation)

    @router.get("/users/{user_id}/reservations", responses=_responses(404))
    async def list_reservations(user_id: UserId) -> ReservationList:
        """Every reservation of the user, oldest first, whatever its status."""
        return ReservationList(reservations=[_reservation_view(r) for r in await store.reservations(user_id)])

    return router
