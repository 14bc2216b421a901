"""The transactional outbox end to end: real registry, users and notifications processes on loopback.

Every ``user.created`` event reaches notifications, exactly one notification per event, even when
notifications is down for a while or users is killed with SIGKILL right after creating users.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from harness.events import read_events
from harness.stack import ServiceProcess

from ._support import create_user, eventually, notifications_process, users_process
from .conftest import RunningRegistry, start_registry

DELIVERY_BOUND = 15.0  # the relay's backoff is capped at 5 s; discovery notices a new instance at once


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    running = start_registry(tmp_path)
    yield running
    running.process.stop()


@pytest.fixture
def processes() -> Iterator[list[ServiceProcess]]:
    """Processes a test starts; all stopped at the end, whatever happened."""
    started: list[ServiceProcess] = []
    yield started
    for process in started:
        process.stop()


def outbox_rows(database: Path) -> list[tuple[str, str | None]]:
    """(event_id, delivered_at) of every outbox row, read straight from the file."""
    with closing(sqlite3.connect(database)) as conn:
        return [(row[0], row[1]) for row in conn.execute("SELECT event_id, delivered_at FROM outbox")]


async def notifications_of(notifications: ServiceProcess, user_ids: list[str]) -> dict[str, list[str]]:
    """notification ids per user, as the notification service lists them."""
    async with httpx.AsyncClient(base_url=notifications.url, timeout=5.0) as http:
        answers = await asyncio.gather(*(http.get("/notifications", params={"user_id": u}) for u in user_ids))
    return {
        u: [n["notification_id"] for n in a.json()["notifications"]]
        for u, a in zip(user_ids, answers, strict=True)
    }


async def all_notified(
    notifications: ServiceProcess, user_ids: list[str], within: float
) -> dict[str, list[str]]:
    """Wait until every user has at least one notification; returns the ids per user."""

    async def probe() -> dict[str, list[str]] | None:
        seen = await notifications_of(notifications, user_ids)
        return seen if all(seen.values()) else None

    return await eventually(probe, within=within, what=f"notifications for {len(user_ids)} users", every=0.05)


@pytest.mark.behaviour("outbox.at_least_once", "notifications.deduplicated")
async def test_a_created_user_is_notified_exactly_once(
    tmp_path: Path, registry: RunningRegistry, processes: list[ServiceProcess]
) -> None:
    """The welcome notification carries the event id and the user's name; the outbox row is delivered."""
    database = tmp_path / "users.db"
    notifications = notifications_process(tmp_path, tmp_path / "n.db", registry=registry.url).spawn()
    users = users_process(tmp_path, database, registry=registry.url).spawn()
    processes += [notifications.wait_ready(), users.wait_ready()]

    async with httpx.AsyncClient(base_url=users.url) as http:
        user = await create_user(http, name="Grace Hopper")
    seen = await all_notified(notifications, [user["id"]], within=DELIVERY_BOUND)

    created = [e for e in read_events(tmp_path / "users-1.jsonl") if e["event"] == "users.created"]
    assert seen == {user["id"]: [created[0]["event_id"]]}
    async with httpx.AsyncClient(base_url=notifications.url) as http:
        stored = (await http.get(f"/notifications/{created[0]['event_id']}")).json()
    assert (stored["type"], stored["message"]) == ("user.created", "Welcome, Grace Hopper")
    rows = await eventually(
        lambda: _delivered_rows(database), within=DELIVERY_BOUND, what="the outbox row marked delivered"
    )
    assert [event_id for event_id, _ in rows] == [created[0]["event_id"]]


async def _delivered_rows(database: Path) -> list[tuple[str, str | None]] | None:
    rows = outbox_rows(database)
    return rows if rows and all(delivered for _, delivered in rows) else None


@pytest.mark.behaviour("outbox.at_least_once")
async def test_three_instances_share_one_outbox(
    tmp_path: Path, registry: RunningRegistry, processes: list[ServiceProcess]
) -> None:
    """Three relays on one database: every event is delivered and stored once."""
    database = tmp_path / "users.db"
    notifications = notifications_process(tmp_path, tmp_path / "n.db", registry=registry.url).spawn()
    instances = [users_process(tmp_path, database, instance_id=f"users-{n}", registry=registry.url).spawn()
                 for n in (1, 2, 3)]  # fmt: skip
    processes += [notifications.wait_ready(), *(i.wait_ready() for i in instances)]

    clients = [httpx.AsyncClient(base_url=i.url) for i in instances]
    try:
        users = await asyncio.gather(*(create_user(clients[n % 3]) for n in range(30)))
    finally:
        for client in clients:
            await client.aclose()
    user_ids = [u["id"] for u in users]
    seen = await all_notified(notifications, user_ids, within=DELIVERY_BOUND)

    event_ids = {event_id for event_id, _ in outbox_rows(database)}
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert {ids[0] for ids in seen.values()} == event_ids
    assert len(event_ids) == 30

    instances[1].stop()  # graceful: the instance deregisters on its way out
    async with httpx.AsyncClient(base_url=registry.url) as http:
        assert (await http.get("/v1/instances/users-2")).status_code == 404
        assert (await http.get("/v1/instances/users-1")).status_code == 200


@pytest.mark.behaviour("outbox.at_least_once")
async def test_events_wait_while_notifications_is_down(
    tmp_path: Path, registry: RunningRegistry, processes: list[ServiceProcess]
) -> None:
    """Failed attempts back off and keep the rows; once notifications starts, all arrive within a bound."""
    database = tmp_path / "users.db"
    users = users_process(tmp_path, database, registry=registry.url).start()
    processes.append(users)
    async with httpx.AsyncClient(base_url=users.url) as http:
        user_ids = [(await create_user(http))["id"] for _ in range(3)]

    async def failures() -> int | None:
        failed = {
            e["event_id"] for e in read_events(tmp_path / "users-1.jsonl") if e["event"] == "outbox.failed"
        }
        return len(failed) if len(failed) == 3 else None

    await eventually(failures, within=DELIVERY_BOUND, what="a failed attempt for each event")
    assert all(delivered is None for _, delivered in outbox_rows(database))

    began = time.monotonic()
    notifications = notifications_process(tmp_path, tmp_path / "n.db", registry=registry.url).start()
    processes.append(notifications)
    seen = await all_notified(notifications, user_ids, within=DELIVERY_BOUND)
    assert time.monotonic() - began < DELIVERY_BOUND
    assert all(len(ids) == 1 for ids in seen.values()), seen


@pytest.mark.behaviour("outbox.at_least_once")
async def test_killed_while_relaying_delivers_everything_after_restart(
    tmp_path: Path, registry: RunningRegistry, processes: list[ServiceProcess]
) -> None:
    """SIGKILL while users are being created and relayed; the restarted instance delivers the rest.

    The ground truth is the database: every committed user (answered or not) has exactly one
    notification, whose id is its outbox event id.
    """
    database = tmp_path / "users.db"
    notifications = notifications_process(tmp_path, tmp_path / "n.db", registry=registry.url).spawn()
    users = users_process(tmp_path, database, registry=registry.url).spawn()
    processes += [notifications.wait_ready(), users.wait_ready()]

    async def create_until_killed() -> int:
        answered = 0
        async with httpx.AsyncClient(base_url=users.url) as http:
            for _ in range(200):
                try:
                    await create_user(http)
                except httpx.TransportError:
                    break
                answered += 1
        return answered

    creating = asyncio.create_task(create_until_killed())
    await eventually(
        lambda: _delivered_events(tmp_path / "users-1.jsonl", at_least=10),
        within=DELIVERY_BOUND,
        what="ten deliveries before the kill",
    )
    users.kill()
    answered = await creating
    rows = outbox_rows(database)
    undelivered = sum(delivered is None for _, delivered in rows)

    restarted = users_process(tmp_path, database, registry=registry.url).start()
    processes.append(restarted)
    user_ids = committed_users(database)
    seen = await all_notified(notifications, user_ids, within=DELIVERY_BOUND)

    assert len(user_ids) >= answered
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert {ids[0] for ids in seen.values()} == {event_id for event_id, _ in rows}
    print(f"killed after {answered} answered creates; {undelivered} of {len(rows)} events undelivered")


async def _delivered_events(log: Path, at_least: int) -> int | None:
    try:
        delivered = sum(e["event"] == "outbox.delivered" for e in read_events(log))
    except FileNotFoundError:
        return None
    return delivered if delivered >= at_least else None


def committed_users(database: Path) -> list[str]:
    with closing(sqlite3.connect(database)) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM users")]


@pytest.mark.behaviour("outbox.dead_letters")
async def test_a_dead_letter_is_listed_counted_and_requeued(
    tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    """A row no notification can come of becomes a dead letter: listed by the API, counted in /metrics,
    never retried by itself; a requeue sends it through the relay again (dead again: still no route)."""
    database = tmp_path / "users.sqlite3"
    users = users_process(tmp_path, database)
    processes.append(users.start())
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(
            "INSERT INTO outbox (event_id, type, payload, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, 0)",
            ("evt-unroutable", "user.renamed", "{}", "2026-01-01T00:00:00+00:00"),
        )
    async with httpx.AsyncClient(base_url=users.url, timeout=5.0) as http:

        async def dead() -> list[dict[str, object]] | None:
            letters: list[dict[str, object]] = (await http.get("/outbox/dead-letters")).json()["dead_letters"]
            return letters or None

        [letter] = await eventually(dead, within=DELIVERY_BOUND, what="a dead letter")
        assert letter["event_id"] == "evt-unroutable"
        assert "no route for event type 'user.renamed'" in str(letter["reason"])
        assert "users_outbox_dead_letters 1.0" in (await http.get("/metrics")).text
        requeued = await http.post("/outbox/dead-letters/evt-unroutable/requeue")
        assert (requeued.status_code, requeued.json()["status"]) == (202, "requeued")
        [again] = await eventually(dead, within=DELIVERY_BOUND, what="the dead letter back")
        assert again["event_id"] == "evt-unroutable"
        missing = await http.post("/outbox/dead-letters/nope/requeue")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    dead_events = [e for e in read_events(tmp_path / "users-1.jsonl") if e["event"] == "outbox.dead_lettered"]
    assert len(dead_events) == 2
