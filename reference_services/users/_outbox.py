"""The transactional outbox table: events written with the change that caused them, claimed with a lease.

Instances sharing the database claim due rows for ``lease`` seconds, so two relays rarely send the same
event; a crash between sending and marking only means the event is sent again (at least once). An event
the receiver refuses outright (a 4xx: retrying cannot help) moves to the dead-letter table, where an
operator sees it and can requeue it once the cause is fixed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reference_services.common import Database, write_transaction

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    lease_owner     TEXT,
    lease_until     REAL,
    delivered_at    TEXT,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS outbox_dead_letters (
    event_id  TEXT    PRIMARY KEY,
    type      TEXT    NOT NULL,
    payload   TEXT    NOT NULL,
    created_at TEXT   NOT NULL,
    attempts  INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    dead_at   TEXT    NOT NULL
);
"""

_FREE = "delivered_at IS NULL AND next_attempt_at <= :now AND (lease_until IS NULL OR lease_until <= :now)"


@dataclass(frozen=True)
class OutboxMessage:
    """One claimed, undelivered event."""

    seq: int
    event_id: str
    type: str
    payload: str
    attempts: int


@dataclass(frozen=True)
class DeadLetter:
    """An event the receiver refused outright; it waits for an operator."""

    event_id: str
    type: str
    attempts: int
    reason: str
    dead_at: str


@dataclass(frozen=True)
class Backlog:
    """Undelivered rows, how many of them are due and not leased now, and the dead letters."""

    pending: int
    due: int
    dead: int = 0


def enqueue(
    conn: sqlite3.Connection, event_id: str, type_: str, payload: Mapping[str, Any], created_at: datetime
) -> None:
    """Add an event; call it inside the transaction that makes the change the event reports."""
    conn.execute(
        "INSERT INTO outbox (event_id, type, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
        (
            event_id,
            type_,
            json.dumps(payload, separators=(",", ":")),
            created_at.isoformat(timespec="microseconds"),
            0.0,
        ),
    )


class Outbox:
    """Queries of the relay; times are Unix seconds from the caller, so tests can move the clock."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def backlog(self, now: float) -> Backlog:
        return await self._db.run(_backlog, now)

    async def claim(self, owner: str, now: float, lease: float, limit: int) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows to ``owner`` until ``now + lease``, oldest first."""
        return await self._db.run(_claim, owner, now, lease, limit)

    async def mark_delivered(self, seq: int, at: datetime) -> bool:
        """False when the row was already marked (another relay delivered it too)."""
        return await self._db.run(_mark_delivered, seq, at)

    async def mark_failed(self, seq: int, owner: str, next_attempt_at: float, error: str) -> None:
        """Count the failed attempt and free the row for ``next_attempt_at`` (if ``owner`` still holds it)."""
        await self._db.run(_mark_failed, seq, owner, next_attempt_at, error)

    async def dead_letter(self, seq: int, owner: str, reason: str, at: datetime) -> bool:
        """Move a claimed row to the dead letters (if ``owner`` still holds it); False when it did not."""
        return await self._db.run(_dead_letter, seq, owner, reason, at)

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        return await self._db.run(_dead_letters)

    async def requeue(self, event_id: str) -> bool:
        """Put a dead letter back in the outbox with fresh attempts; False when there is no such letter."""
        return await self._db.run(_requeue, event_id)

    async def release_leases(self, owner: str) -> int:
        """Free every row leased to ``owner``: its previous incarnation died holding them, or it stops."""
        return await self._db.run(_release_leases, owner)


def _backlog(conn: sqlite3.Connection, now: float) -> Backlog:
    row = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM({_FREE}), 0) FROM outbox WHERE delivered_at IS NULL", {"now": now}
    ).fetchone()
    dead = conn.execute("SELECT COUNT(*) FROM outbox_dead_letters").fetchone()[0]
    return Backlog(pending=int(row[0]), due=int(row[1]), dead=int(dead))


def _claim(conn: sqlite3.Connection, owner: str, now: float, lease: float, limit: int) -> list[OutboxMessage]:
    # One statement, so the pick and the lease are atomic across processes without an explicit transaction.
    rows = conn.execute(
        f"""UPDATE outbox SET lease_owner = :owner, lease_until = :until
            WHERE seq IN (SELECT seq FROM outbox WHERE {_FREE} ORDER BY seq LIMIT :limit)
            RETURNING seq, event_id, type, payload, attempts""",
        {"owner": owner, "until": now + lease, "now": now, "limit": limit},
    ).fetchall()
    messages = [OutboxMessage(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    return sorted(messages, key=lambda m: m.seq)


def _mark_delivered(conn: sqlite3.Connection, seq: int, at: datetime) -> bool:
    cursor = conn.execute(
        """UPDATE outbox SET delivered_at = ?, lease_owner = NULL, lease_until = NULL, last_error = NULL
           WHERE seq = ? AND delivered_at IS NULL""",
        (at.isoformat(timespec="microseconds"), seq),
    )
    return cursor.rowcount == 1


def _mark_failed(conn: sqlite3.Connection, seq: int, owner: str, next_attempt_at: float, error: str) -> None:
    conn.execute(
        """UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,
                             lease_owner = NULL, lease_until = NULL
           WHERE seq = ? AND delivered_at IS NULL AND lease_owner = ?""",
        (next_attempt_at, error[:500], seq, owner),
    )


def _release_leases(conn: sqlite3.Connection, owner: str) -> int:
    cursor = conn.execute(
        """UPDATE outbox SET lease_owner = NULL, lease_until = NULL
           WHERE lease_owner = ? AND delivered_at IS NULL""",
        (owner,),
    )
    return cursor.rowcount


def _dead_letter(conn: sqlite3.Connection, seq: int, owner: str, reason: str, at: datetime) -> bool:
    with write_transaction(conn):
        row = conn.execute(
            """SELECT event_id, type, payload, created_at, attempts FROM outbox
               WHERE seq = ? AND delivered_at IS NULL AND lease_owner = ?""",
            (seq, owner),
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            "INSERT OR REPLACE INTO outbox_dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row[0], row[1], row[2], row[3], row[4] + 1, reason[:500], at.isoformat(timespec="microseconds")),
        )
        conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
    return True


def _dead_letters(conn: sqlite3.Connection) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT event_id, type, attempts, reason, dead_at FROM outbox_dead_letters ORDER BY dead_at, event_id"
    ).fetchall()
    return [DeadLetter(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def _requeue(conn: sqlite3.Connection, event_id: str) -> bool:
    with write_transaction(conn):
        row = conn.execute(
            "SELECT event_id, type, payload, created_at FROM outbox_dead_letters WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            "INSERT INTO outbox (event_id, type, payload, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, 0)",
            (row[0], row[1], row[2], row[3]),
        )
        conn.execute("DELETE FROM outbox_dead_letters WHERE event_id = ?", (event_id,))
    return True
