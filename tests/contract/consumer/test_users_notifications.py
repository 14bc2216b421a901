"""users -> notifications: the outbox relay delivering a ``user.created`` event as a welcome notification.

The consumer code is the real relay: a user is created in a users database (which writes the event to the
outbox in the same transaction) and one relay round sends it through the relay's own ServiceClient.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pact import Pact, match
from pact.interaction import HttpInteraction
from prometheus_client import CollectorRegistry

from harness.events import EventLog
from reference_services.common import Database
from reference_services.users import UsersSettings
from reference_services.users._outbox import OUTBOX_SCHEMA, Outbox
from reference_services.users._relay import OutboxRelay, RelayMetrics
from reference_services.users._store import USERS_SCHEMA, NewUser, UsersStore

from .._support import NewPact, timestamp
from ._clients import mock_client

CONSUMER, PROVIDER = "users", "notifications"
# What the relay uses unless its topology says otherwise.
NOTIFY_CLIENT = UsersSettings.client_defaults["notifications"].to_config()
JSON = "application/json"
EVENT_ID = "5f0c8a52-3c57-4f7c-9d36-0d7a1c2b9e41"
USER = NewUser("u-1", "Ada Lovelace", "ada@example.org", 100)
WELCOME = {
    "notification_id": EVENT_ID,
    "user_id": USER.id,
    "type": "user.created",
    "message": f"Welcome, {USER.name}",
}


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    """A users database holding one undelivered ``user.created`` event."""
    db = Database(tmp_path / "users.sqlite3", USERS_SCHEMA + OUTBOX_SCHEMA)
    await db.open()
    try:
        await UsersStore(db).create_user(USER, EVENT_ID)
        yield Outbox(db)
    finally:
        await db.close()


def welcome_request(pact: Pact, description: str) -> HttpInteraction:
    return (
        pact.upon_receiving(description)
        .with_request("POST", "/notifications")
        .with_body(
            {
                "notification_id": match.uuid(EVENT_ID),
                "user_id": match.str(USER.id),
                "type": "user.created",
                "message": match.str(f"Welcome, {USER.name}"),
            },
            content_type=JSON,
        )
    )


def stored() -> dict[str, object]:
    return {
        "notification_id": match.str(EVENT_ID),
        "user_id": match.str(USER.id),
        "type": match.str("user.created"),
        "message": match.str(f"Welcome, {USER.name}"),
        "created_at": timestamp(),
    }


async def relay_once(pact: Pact, outbox: Outbox) -> CollectorRegistry:
    """One relay round against the mock server; the metrics say how each event went."""
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry)
    with pact.serve(addr="127.0.0.1") as server:
        async with mock_client("notifications", server, NOTIFY_CLIENT) as notifications:
            relay = OutboxRelay(
                outbox, lambda: notifications, owner="users-1", interval=0.05, events=EventLog("users-1"),
                metrics=metrics,
            )  # fmt: skip
            assert await relay.relay_once() == 1
    return registry


def deliveries(metrics: CollectorRegistry, result: str) -> float | None:
    return metrics.get_sample_value("users_outbox_deliveries_total", {"result": result})


@pytest.mark.behaviour("contract.users-notifications", "outbox.at_least_once")
class TestWelcomeNotification:
    async def test_new_event_is_delivered(self, new_pact: NewPact, outbox: Outbox) -> None:
        """201: the event is marked delivered and leaves the outbox."""
        pact = new_pact(CONSUMER, PROVIDER)
        (
            welcome_request(pact, "a welcome notification for a new user")
            .given("no such notification", {"notification_id": EVENT_ID})
            .will_respond_with(201)
            .with_body(stored(), content_type=JSON)
        )
        metrics = await relay_once(pact, outbox)
        assert deliveries(metrics, "delivered") == 1
        assert (await outbox.backlog(time.time())).pending == 0

    async def test_redelivery_is_a_duplicate(self, new_pact: NewPact, outbox: Outbox) -> None:
        """200 (notifications had it already): delivered all the same, counted as a duplicate."""
        pact = new_pact(CONSUMER, PROVIDER)
        (
            welcome_request(pact, "a repeated welcome notification")
            .given("a stored notification", **WELCOME)
            .will_respond_with(200)
            .with_body(stored(), content_type=JSON)
        )
        metrics = await relay_once(pact, outbox)
        assert deliveries(metrics, "duplicate") == 1
        assert (await outbox.backlog(time.time())).pending == 0
