"""Where saga snapshots come from: the services' HTTP APIs, or their SQLite files read directly.

The HTTP reader is what a probe of a running stack uses. The database reader is the independent one:
it trusts no service code, only the files, opened read-only (WAL readers never block the writers).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx

from harness.checks._saga import (
    HOLDING,
    DeadLetterRecord,
    NotificationRecord,
    OrderRecord,
    ReservationRecord,
    SagaSnapshot,
)


def collect_saga_snapshot(
    orchestrator_url: str, users_url: str, notifications_url: str, *, timeout: float = 10.0
) -> SagaSnapshot:
    """Read the orders and, for every user that has one, its credit, reservations and notifications."""
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        orders = [
            _order(o)
            for o in http.get(f"{orchestrator_url}/orders", params={"limit": 10_000})
            .raise_for_status()
            .json()["orders"]
        ]
        snapshot = SagaSnapshot(orders=orders)
        for user in sorted({o.user_id for o in orders}):
            answer = http.get(f"{users_url}/users/{user}")
            if answer.status_code == 404:
                continue
            snapshot.reserved[user] = int(answer.raise_for_status().json()["reserved"])
            snapshot.reservations[user] = [
                _reservation(r)
                for r in http.get(f"{users_url}/users/{user}/reservations")
                .raise_for_status()
                .json()["reservations"]
            ]
            snapshot.notifications[user] = [
                NotificationRecord(str(n["notification_id"]), str(n["user_id"]))
                for n in http.get(f"{notifications_url}/notifications", params={"user_id": user})
                .raise_for_status()
                .json()["notifications"]
            ]
    return snapshot


def read_saga_databases(orchestrator_db: Path, users_db: Path, notifications_db: Path) -> SagaSnapshot:
    """The same snapshot, from the three services' database files (all of it, not only order users)."""
    with _read_only(orchestrator_db) as db:
        columns = {row["name"] for row in db.execute("PRAGMA table_info(orders)")}
        stalled = "stalled_in" if "stalled_in" in columns else "NULL AS stalled_in"
        orders = [
            _order(dict(row))
            for row in db.execute(
                f"SELECT order_id, user_id, amount, state, idempotency_key, {stalled} FROM orders"
            )
        ]
    snapshot = SagaSnapshot(orders=orders)
    with _read_only(users_db) as db:
        for row in db.execute("SELECT id FROM users"):
            snapshot.reserved[row["id"]] = 0
            snapshot.reservations[row["id"]] = []
        for row in db.execute("SELECT reservation_id, user_id, order_id, status, amount FROM reservations"):
            reservation = _reservation(dict(row))
            snapshot.reservations[row["user_id"]].append(reservation)
            if reservation.status in HOLDING:
                snapshot.reserved[row["user_id"]] += reservation.amount
        if _has_table(db, "outbox_dead_letters"):
            snapshot.dead_letters = [
                DeadLetterRecord(row["event_id"], row["type"], row["reason"])
                for row in db.execute("SELECT event_id, type, reason FROM outbox_dead_letters")
            ]
    notifications: defaultdict[str, list[NotificationRecord]] = defaultdict(list)
    with _read_only(notifications_db) as db:
        for row in db.execute("SELECT notification_id, user_id FROM notifications ORDER BY seq"):
            notifications[row["user_id"]].append(NotificationRecord(row["notification_id"], row["user_id"]))
    snapshot.notifications = dict(notifications)
    return snapshot


def outbox_pending(users_db: Path) -> int:
    """Events the users' outbox has not delivered yet (welcome notifications), from its file."""
    with _read_only(users_db) as db:
        if not _has_table(db, "outbox"):
            return 0
        return int(db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.exists():
        raise FileNotFoundError(f"database {path} does not exist")
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)) as db:
        db.row_factory = sqlite3.Row
        db.execute("BEGIN")  # one consistent read of the whole file
        yield db


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return (
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        is not None
    )


def _order(o: dict[str, Any]) -> OrderRecord:
    return OrderRecord(
        order_id=str(o["order_id"]),
        user_id=str(o["user_id"]),
        amount=int(o["amount"]),
        state=str(o["state"]),
        stalled_in=o.get("stalled_in"),
        idempotency_key=o.get("idempotency_key"),
    )


def _reservation(r: dict[str, Any]) -> ReservationRecord:
    return ReservationRecord(
        reservation_id=str(r["reservation_id"]),
        order_id=r.get("order_id"),
        status=str(r["status"]),
        amount=int(r["amount"]),
    )
