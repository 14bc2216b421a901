"""notifications <- users: the ``user.created`` event as an asynchronous message contract.

What reads the message is the relay's path to notifications: parse it as a ``UserCreatedEvent``, turn it
into a welcome notification, which must be a request the notifications API accepts.
"""

from __future__ import annotations

import pytest
from pact import match

from reference_services.notifications._models import NotificationRequest
from reference_services.users.events import USER_CREATED, UserCreatedEvent, welcome_notification

from .._support import TIMESTAMP_FORMAT, NewPact

CONSUMER, PROVIDER = "notifications", "users"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def handle_user_created(body: str | bytes | None, metadata: dict[str, object]) -> None:
    """The consumer side of the message: it must route, parse and become an acceptable notification."""
    assert metadata.get("event_type") == USER_CREATED  # the relay routes on the outbox row's type
    assert body is not None
    event = UserCreatedEvent.model_validate_json(body)
    request = NotificationRequest.model_validate(welcome_notification(event))
    assert request.notification_id == event.event_id  # redeliveries deduplicate on the event id


@pytest.mark.behaviour("contract.notifications-users")
def test_user_created_event(new_pact: NewPact) -> None:
    """A ``user.created`` event carries the ids, the user and a UTC timestamp with microseconds."""
    pact = new_pact(CONSUMER, PROVIDER)
    (
        pact.upon_receiving("a user.created event", "Async")
        .with_body(
            {
                "event_id": match.uuid("5f0c8a52-3c57-4f7c-9d36-0d7a1c2b9e41"),
                "type": USER_CREATED,
                "occurred_at": match.datetime("2024-05-01T10:00:00.123456+00:00", format=TIMESTAMP_FORMAT),
                "user": {
                    "id": match.str("u-1001"),
                    "name": match.str("Grace Hopper"),
                    "email": match.regex("grace@example.org", regex=EMAIL),
                },
            },
            "application/json",
        )
        .with_metadata({"event_type": USER_CREATED})
    )
    pact.verify(handle_user_created, "Async")
