"""The notifications service: accepts notifications idempotently (by id) and lists them per user.

``create_app(settings)`` wires the database and the routes; a redelivery with the same content answers
200 with the stored record, the same id with other content answers 409.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from prometheus_client import CollectorRegistry, Counter

from harness.discovery import ClientMetrics
from harness.events import EventLog
from reference_services.common import (
    NAME_PATTERN,
    ApiError,
    Database,
    ErrorBody,
    create_service_app,
    error_response,
    exempt_paths,
    joined,
    require_json,
)

from ._models import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    USER_ID_MAX_LENGTH,
    NotificationList,
    NotificationRequest,
    NotificationView,
)
from ._provider_states import router as provider_states_router
from ._settings import NotificationsSettings
from ._store import (
    NOTIFICATIONS_SCHEMA,
    IdempotencyConflict,
    NewNotification,
    Notification,
    NotificationsStore,
)

SERVICE = "notifications"

NotificationId = Annotated[
    str,
    PathParam(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, description="Notification id."),
]
UserIdQuery = Annotated[
    str,
    Query(
        min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=NAME_PATTERN, description="Whose notifications."
    ),
]


class _Counters:
    """What happened to accepted notifications: stored, deduplicated, refused as conflicting."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored = Counter("notifications_stored", "Notifications stored.", registry=registry)
        self.deduplicated = Counter(
            "notifications_deduplicated",
            "Redeliveries answered with the notification stored earlier.",
            registry=registry,
        )
        self.conflicts = Counter(
            "notifications_conflicts", "Ids reused with different content (409).", registry=registry
        )


def create_app(settings: NotificationsSettings) -> FastAPI:
    """One notifications instance, registered as ``notifications`` while it runs."""
    metrics = CollectorRegistry()
    events = EventLog(settings.instance_id, settings.event_log)
    db = Database(settings.database, NOTIFICATIONS_SCHEMA, name=f"{settings.instance_id}-db")
    store = NotificationsStore(db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await db.open()
        try:
            async with joined(settings, SERVICE, events, ClientMetrics(metrics)):
                yield
        finally:
            await db.close()
            events.close()

    async def ready() -> dict[str, bool]:
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
    app.add_exception_handler(IdempotencyConflict, _error_response)
    app.include_router(_router(store, events, _Counters(metrics)))
    if settings.test_mode:  # contract verification only: never mounted in a normal run
        app.include_router(provider_states_router(store, app))
    return app


async def _error_response(request: Request, exc: Exception) -> Response:
    return error_response(409, "idempotency_conflict", str(exc))


def _view(notification: Notification) -> NotificationView:
    return NotificationView(
        notification_id=notification.notification_id,
        user_id=notification.user_id,
        type=notification.type,
        message=notification.message,
        created_at=notification.created_at,
    )


def _router(store: NotificationsStore, events: EventLog, counters: _Counters) -> APIRouter:
    router = APIRouter(tags=["notifications"])

    @router.post(
        "/notifications",
        status_code=201,
        dependencies=[Depends(require_json)],
        responses={
            200: {"model": NotificationView, "description": "A redelivery: the notification stored earlier."},
            409: {"model": ErrorBody, "description": "The id is taken by a notification with other content."},
        },
    )
    async def accept(body: NotificationRequest, response: Response) -> NotificationView:
        """Store a notification (201); the same id and content again is deduplicated (200)."""
        new = NewNotification(body.notification_id, body.user_id, body.type, body.message)
        try:
            notification, stored = await store.accept(new)
        except IdempotencyConflict:
            counters.conflicts.inc()
            events.emit("notifications.conflict", notification_id=new.notification_id, user_id=new.user_id)
            raise
        response.status_code = 201 if stored else 200
        (counters.stored if stored else counters.deduplicated).inc()
        events.emit(
            "notifications.stored" if stored else "notifications.deduplicated",
            notification_id=notification.notification_id,
            user_id=notification.user_id,
            type=notification.type,
        )
        return _view(notification)

    @router.get("/notifications/{notification_id}", responses={404: {"model": ErrorBody}})
    async def get_notification(notification_id: NotificationId) -> NotificationView:
        """One notification by id."""
        notification = await store.get(notification_id)
        if notification is None:
            raise ApiError(404, "not_found", f"Notification {notification_id!r} does not exist.")
        return _view(notification)

    @router.get("/notifications")
    async def list_notifications(user_id: UserIdQuery) -> NotificationList:
        """Every notification of one user, oldest first (an empty list for a user without any)."""
        return NotificationList(notifications=[_view(n) for n in await store.for_user(user_id)])

    return router
