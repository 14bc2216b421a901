"""The outbox relay in-process, on a real SQLite file, with a fake clock and a mock notification service.

What the end-to-end tests cannot pin down precisely: per-row backoff, leases between relays, what is sent.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.events import EventLog
from harness.resilience import RetryPolicy
from reference_services.common import Database
from reference_services.users._outbox import OUTBOX_SCHEMA, Outbox
from reference_services.users._relay import OutboxRelay, RelayMetrics
from reference_services.users._store import USERS_SCHEMA, NewUser, UsersStore

BASE = 0.2
LEASE = 15.0


@dataclass
class Receiver:
    """The notification service, mocked: answers each POST with the next status of ``statuses``."""

    statuses: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    protocol_errors: int = 0
    """Answers first given as uvicorn gives them for a request a fault cut: a plain-text 400."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.protocol_errors:
            self.protocol_errors -= 1
            return httpx.Response(400, text="Invalid HTTP request received.")
        status = self.statuses.pop(0) if self.statuses else 201
        return httpx.Response(status, json={"error": "x", "message": "y"} if status >= 400 else {})


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    database: Path
    store: UsersStore
    outbox: Outbox
    receiver: Receiver
    clock: Clock
    events: EventLog
    metrics: CollectorRegistry
    make_relay: Callable[[str], OutboxRelay]

    def in_outbox(self, event_id: str) -> bool:
        with closing(sqlite3.connect(self.database)) as conn:
            return conn.execute("SELECT 1 FROM outbox WHERE event_id = ?", (event_id,)).fetchone() is not None

    def row(self, event_id: str) -> sqlite3.Row:
        with closing(sqlite3.connect(self.database)) as conn:
            conn.row_factory = sqlite3.Row
            found: sqlite3.Row = conn.execute(
                "SELECT * FROM outbox WHERE event_id = ?", (event_id,)
            ).fetchone()
            return found

    def deliveries(self, result: str) -> float:
        value = self.metrics.get_sample_value("users_outbox_deliveries_total", {"result": result})
        return value or 0.0


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db = Database(tmp_path / "users.db", USERS_SCHEMA + OUTBOX_SCHEMA)
    await db.open()
    receiver, clock, events, metrics = Receiver(), Clock(), EventLog("users-test"), CollectorRegistry()
    relay_metrics = RelayMetrics(metrics)
    http = httpx.AsyncClient(transport=httpx.MockTransport(receiver.handle))
    client = ServiceClient(
        "notifications",
        StaticInstances([Instance("notifications-1", "notifications", "127.0.0.1", 9)]),
        config=ServiceClientConfig(retry=RetryPolicy(max_attempts=1)),
        http=http,
    )

    def make_relay(owner: str) -> OutboxRelay:
        return OutboxRelay(
            Outbox(db), lambda: client, owner=owner, interval=BASE, events=events, metrics=relay_metrics,
            lease=LEASE, clock=clock, rng=random.Random(1),
        )  # fmt: skip

    yield Rig(tmp_path / "users.db", UsersStore(db), Outbox(db), receiver, clock, events, metrics, make_relay)
    await http.aclose()
    await db.close()


async def new_user(rig: Rig, user_id: str = "ada") -> str:
    """Create a user; returns the id of its ``user.created`` event."""
    event_id = f"evt-{user_id}"
    await rig.store.create_user(NewUser(user_id, "Ada Lovelace", f"{user_id}@example.org", 10), event_id)
    return event_id


@pytest.mark.behaviour("outbox.at_least_once")
async def test_sends_the_welcome_notification_keyed_by_the_event_id(rig: Rig) -> None:
    event_id = await new_user(rig)
    assert await rig.make_relay("users-1").relay_once() == 1
    [request] = rig.receiver.requests
    assert (request.method, request.url.path) == ("POST", "/notifications")
    assert request.headers["Idempotency-Key"] == event_id
    assert json.loads(request.content) == {
        "notification_id": event_id,
        "user_id": "ada",
        "type": "user.created",
        "message": "Welcome, Ada Lovelace",
    }
    assert rig.row(event_id)["delivered_at"] is not None
    assert rig.deliveries("delivered") == 1


@pytest.mark.behaviour("outbox.at_least_once")
async def test_a_duplicate_answer_counts_as_delivered(rig: Rig) -> None:
    """200: the receiver had it already (an earlier send whose mark was lost)."""
    event_id = await new_user(rig)
    rig.receiver.statuses = [200]
    await rig.make_relay("users-1").relay_once()
    assert rig.row(event_id)["delivered_at"] is not None
    assert rig.deliveries("duplicate") == 1


@pytest.mark.behaviour("outbox.at_least_once")
@pytest.mark.parametrize("status", [pytest.param(503, id="unavailable"), pytest.param(429, id="too-many")])
async def test_a_failed_row_backs_off_and_is_retried_when_due(rig: Rig, status: int) -> None:
    """Each failure counts an attempt and pushes the row back, doubling; then a success delivers it."""
    event_id = await new_user(rig)
    relay = rig.make_relay("users-1")
    rig.receiver.statuses = [status, status, status]
    for attempt in (1, 2, 3):
        await relay.relay_once()
        row = rig.row(event_id)
        ceiling = BASE * 2 ** (attempt - 1)
        assert row["attempts"] == attempt
        assert ceiling / 2 <= row["next_attempt_at"] - rig.clock.now <= ceiling
        assert row["delivered_at"] is None
        assert row["lease_owner"] is None
        assert str(status) in row["last_error"]
        assert await relay.relay_once() == 0  # not due yet: nothing is claimed
        rig.clock.now = row["next_attempt_at"]
    await relay.relay_once()
    assert rig.row(event_id)["delivered_at"] is not None
    assert (rig.deliveries("failed"), rig.deliveries("delivered")) == (3, 1)
    assert [e["attempts"] for e in rig.events.of_type("outbox.failed")] == [1, 2, 3]


@pytest.mark.behaviour("outbox.dead_letters")
@pytest.mark.parametrize("status", [pytest.param(409, id="conflict"), pytest.param(422, id="invalid")])
async def test_a_refused_row_becomes_a_dead_letter_at_once_and_can_be_requeued(rig: Rig, status: int) -> None:
    """A clear 4xx would fail forever: the row leaves the outbox for the dead letters (counted, evented),
    is never sent again by itself, and an operator's requeue delivers it."""
    event_id = await new_user(rig)
    relay = rig.make_relay("users-1")
    rig.receiver.statuses = [status]
    await relay.relay_once()
    assert not rig.in_outbox(event_id)
    [letter] = await rig.outbox.dead_letters()
    assert (letter.event_id, letter.attempts) == (event_id, 1)
    assert str(status) in letter.reason
    assert rig.deliveries("dead_lettered") == 1
    assert rig.metrics.get_sample_value("users_outbox_dead_letters") == 1
    assert [e["event_id"] for e in rig.events.of_type("outbox.dead_lettered")] == [event_id]
    rig.clock.now += 3600
    assert await relay.relay_once() == 0
    assert len(rig.receiver.requests) == 1

    assert await rig.outbox.requeue(event_id)
    assert not await rig.outbox.requeue(event_id)
    await relay.relay_once()
    assert rig.row(event_id)["delivered_at"] is not None
    assert await rig.outbox.dead_letters() == []
    assert rig.metrics.get_sample_value("users_outbox_dead_letters") == 0


@pytest.mark.behaviour("outbox.dead_letters", "outbox.at_least_once")
async def test_a_plain_400_from_the_http_layer_is_retried_never_a_dead_letter(rig: Rig) -> None:
    """uvicorn's plain-text 400 for a request a fault cut is no refusal of the notification service: the
    row waits its backoff and is delivered, where a status-only rule dead-lettered it."""
    event_id = await new_user(rig)
    relay = rig.make_relay("users-1")
    rig.receiver.protocol_errors = 1
    await relay.relay_once()
    assert rig.in_outbox(event_id)
    assert await rig.outbox.dead_letters() == []
    assert "Invalid HTTP request received." in rig.row(event_id)["last_error"]
    rig.clock.now = rig.row(event_id)["next_attempt_at"]
    await relay.relay_once()
    assert rig.row(event_id)["delivered_at"] is not None
    counted = [rig.deliveries(result) for result in ("failed", "delivered", "dead_lettered")]
    assert counted == [1, 1, 0]


@pytest.mark.behaviour("outbox.dead_letters")
async def test_a_row_that_cannot_be_sent_becomes_a_dead_letter(rig: Rig) -> None:
    """An event type without a route is never sent and never retried."""
    with closing(sqlite3.connect(rig.database)) as conn, conn:
        conn.execute(
            "INSERT INTO outbox (event_id, type, payload, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, 0)",
            ("evt-x", "user.renamed", "{}", "2026-01-01T00:00:00+00:00"),
        )
    await rig.make_relay("users-1").relay_once()
    [letter] = await rig.outbox.dead_letters()
    assert "no route for event type 'user.renamed'" in letter.reason
    assert rig.receiver.requests == []


@pytest.mark.behaviour("outbox.at_least_once")
async def test_a_leased_row_is_not_claimed_by_another_relay_until_the_lease_ends(rig: Rig) -> None:
    """The lease keeps relays sharing the database apart; a restarted owner frees its own leases."""
    event_id = await new_user(rig)
    now = rig.clock.now
    assert [m.event_id for m in await rig.outbox.claim("users-1", now, LEASE, 10)] == [event_id]
    assert await rig.outbox.claim("users-2", now + LEASE - 1, LEASE, 10) == []
    assert [m.event_id for m in await rig.outbox.claim("users-2", now + LEASE, LEASE, 10)] == [event_id]

    assert await rig.outbox.release_leases("users-2") == 1
    assert [m.event_id for m in await rig.outbox.claim("users-3", now + LEASE, LEASE, 10)] == [event_id]


@pytest.mark.behaviour("services.operations")
async def test_pending_gauge_follows_the_backlog(rig: Rig) -> None:
    for user_id in ("a1", "a2", "a3"):
        await new_user(rig, user_id)
    rig.receiver.statuses = [503]
    await rig.make_relay("users-1").relay_once()
    assert rig.metrics.get_sample_value("users_outbox_pending") == 1
