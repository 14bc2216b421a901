"""Notifications in SQLite, deduplicated by id: a redelivered event finds its record instead of adding one.

Accepting is one ``BEGIN IMMEDIATE`` transaction (look up, then insert), so two deliveries of the same
event racing on different connections still leave exactly one record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from reference_services.common import Database, write_transaction

NOTIFICATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT    NOT NULL UNIQUE,
    user_id         TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications (user_id, seq);
"""

_COLUMNS = "notification_id, user_id, type, message, created_at"


@dataclass(frozen=True)
class NewNotification:
    """What a sender asks to store; its ``notification_id`` is the idempotency key."""

    notification_id: str
    user_id: str
    type: str
    message: str


@dataclass(frozen=True)
class Notification:
    notification_id: str
    user_id: str
    type: str
    message: str
    created_at: datetime

    def same_content(self, new: NewNotification) -> bool:
        return (self.user_id, self.type, self.message) == (new.user_id, new.type, new.message)


class IdempotencyConflict(Exception):
    """The id is taken by a notification with other content."""

    def __init__(self, existing: Notification) -> None:
        super().__init__(
            f"Notification {existing.notification_id!r} exists with different content; "
            "a redelivery must repeat the original exactly."
        )
        self.existing = existing


def utc_now() -> datetime:
    return datetime.now(UTC)


class NotificationsStore:
    """The notifications database; each method is one statement or transaction on a worker thread."""

    def __init__(self, db: Database, *, now: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._now = now

    async def accept(self, new: NewNotification) -> tuple[Notification, bool]:
        """The stored notification and True when stored now, False for a duplicate of an earlier one."""
        return await self._db.run(self._accept, new)

    async def get(self, notification_id: str) -> Notification | None:
        return await self._db.run(_get, notification_id)

    async def for_user(self, user_id: str) -> list[Notification]:
        """The user's notifications, oldest first (none for an unknown user)."""
        return await self._db.run(_for_user, user_id)

    async def delete(self, notification_id: str) -> bool:
        """Remove one notification (for contract provider states only); False when unknown."""
        return await self._db.run(_delete, notification_id)

    def _accept(self, conn: sqlite3.Connection, new: NewNotification) -> tuple[Notification, bool]:
        with write_transaction(conn):
            existing = _get(conn, new.notification_id)
            if existing is not None:
                if not existing.same_content(new):
                    raise IdempotencyConflict(existing)
                return existing, False
            now = self._now()
            conn.execute(
                f"INSERT INTO notifications ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (
                    new.notification_id,
                    new.user_id,
                    new.type,
                    new.message,
                    now.isoformat(timespec="microseconds"),
                ),
            )
        return Notification(new.notification_id, new.user_id, new.type, new.message, now), True


def _get(conn: sqlite3.Connection, notification_id: str) -> Notification | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM notifications WHERE notification_id = ?", (notification_id,)
    ).fetchone()
    return None if row is None else _from_row(row)


def _delete(conn: sqlite3.Connection, notification_id: str) -> bool:
    with write_transaction(conn):
        deleted = conn.execute("DELETE FROM notifications WHERE notification_id = ?", (notification_id,))
        return deleted.rowcount > 0


def _for_user(conn: sqlite3.Connection, user_id: str) -> list[Notification]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM notifications WHERE user_id = ? ORDER BY seq", (user_id,)
    ).fetchall()
    return [_from_row(row) for row in rows]


def _from_row(row: sqlite3.Row) -> Notification:
    return Notification(row[0], row[1], row[2], row[3], datetime.fromisoformat(row[4]))
