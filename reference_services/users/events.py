"""The ``user.created`` event message and the notification it becomes: pure functions, one source of truth.

The outbox stores the message, the relay turns it into a notification request, and the message pact of
the event pins the same shape, so all three are built here and nowhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

USER_CREATED = "user.created"


class UserIdentity(Protocol):
    """What an event says about a user."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def email(self) -> str: ...


class EventUser(BaseModel):
    """The user inside a ``user.created`` message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    email: str


class UserCreatedEvent(BaseModel):
    """A ``user.created`` message as stored in the outbox (read back by the relay)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    type: Literal["user.created"]
    occurred_at: str
    user: EventUser


def user_created_event(user: UserIdentity, event_id: str, occurred_at: datetime) -> dict[str, Any]:
    """The JSON message ``{"event_id", "type", "occurred_at", "user": {"id", "name", "email"}}``.

    ``occurred_at`` must be timezone-aware; it is written in UTC as ISO 8601 with ``+00:00``.
    """
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    return {
        "event_id": event_id,
        "type": USER_CREATED,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "user": {"id": user.id, "name": user.name, "email": user.email},
    }


def welcome_notification(event: UserCreatedEvent) -> dict[str, str]:
    """The ``POST /notifications`` body for a ``user.created`` event: keyed by the event id, so
    redeliveries of the same event are deduplicated by the notification service."""
    return {
        "notification_id": event.event_id,
        "user_id": event.user.id,
        "type": event.type,
        "message": f"Welcome, {event.user.name}",
    }
