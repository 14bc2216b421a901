"""Users, credit and reservations in SQLite: the rules of reserve / confirm / release, one transaction each.

Every read-modify-write runs under ``BEGIN IMMEDIATE``, so the instances sharing the file serialise on
it: two identical reserves racing on two processes make one reservation, and credit is never overbooked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from reference_services.common import Database, read_transaction, write_transaction

from ._outbox import enqueue
from .events import USER_CREATED, user_created_event

USERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    credit     INTEGER NOT NULL CHECK (credit >= 0),
    created_at TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    reservation_id TEXT    NOT NULL UNIQUE,
    user_id        TEXT    NOT NULL REFERENCES users (id),
    amount         INTEGER NOT NULL CHECK (amount >= 0),
    status         TEXT    NOT NULL CHECK (status IN ('reserved', 'confirmed', 'released')),
    order_id       TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_user ON reservations (user_id, status);
"""

_COLUMNS = "reservation_id, user_id, amount, status, order_id, created_at"
_RESERVED_SUM = """COALESCE((SELECT SUM(amount) FROM reservations
    WHERE user_id = :user_id AND status IN ('reserved', 'confirmed')), 0)"""


class ReservationStatus(StrEnum):
    """reserved -> confirmed, or reserved -> released; both ends are final."""

    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    RELEASED = "released"


class ReleaseResult(StrEnum):
    """What a release did."""

    RELEASED = "released"
    ALREADY_RELEASED = "already_released"
    TOMBSTONE = "tombstone"  # the reservation was unknown: a released, zero-amount record now holds its id


@dataclass(frozen=True)
class NewUser:
    id: str
    name: str
    email: str
    credit: int


@dataclass(frozen=True)
class User:
    """A user and its credit; ``reserved`` sums reservations that are reserved or confirmed."""

    id: str
    name: str
    email: str
    credit: int
    reserved: int
    created_at: datetime

    @property
    def available(self) -> int:
        return self.credit - self.reserved


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    user_id: str
    amount: int
    status: ReservationStatus
    order_id: str | None
    created_at: datetime


class StoreError(Exception):
    """A request the rules refuse; the message is a sentence for the API answer."""


class UserExists(StoreError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"User {user_id!r} already exists.")


class UnknownUser(StoreError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"User {user_id!r} does not exist.")


class UnknownReservation(StoreError):
    def __init__(self, user_id: str, reservation_id: str) -> None:
        super().__init__(f"User {user_id!r} has no reservation {reservation_id!r}.")


class IdempotencyConflict(StoreError):
    """The reservation id is taken by a reservation of another user or of another amount."""


class ReservationReleased(StoreError):
    def __init__(self, reservation_id: str) -> None:
        super().__init__(
            f"Reservation {reservation_id!r} was released (or cancelled before it arrived); use a new id."
        )


class InsufficientCredit(StoreError):
    def __init__(self, user_id: str, amount: int, available: int) -> None:
        super().__init__(f"User {user_id!r} has {available} available, less than the {amount} requested.")
        self.available = available


class InvalidState(StoreError):
    def __init__(self, reservation_id: str, status: ReservationStatus, action: str) -> None:
        super().__init__(f"Reservation {reservation_id!r} is {status.value} and cannot be {action}.")
        self.status = status


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """Fixed width (always microseconds), so stored times sort as text."""
    return moment.isoformat(timespec="microseconds")


class UsersStore:
    """The users database; each method is one transaction on a worker thread."""

    def __init__(self, db: Database, *, now: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._now = now

    async def create_user(self, new: NewUser, event_id: str) -> User:
        """Insert the user and its ``user.created`` outbox event together; UserExists on a taken id."""
        return await self._db.run(self._create_user, new, event_id)

    async def get_user(self, user_id: str) -> User:
        return await self._db.run(_get_user, user_id)

    async def reserve(
        self, user_id: str, reservation_id: str, amount: int, order_id: str | None
    ) -> tuple[Reservation, bool]:
        """The reservation and True when made now, False when it is a replay of an earlier one."""
        return await self._db.run(self._reserve, user_id, reservation_id, amount, order_id)

    async def confirm(self, user_id: str, reservation_id: str) -> tuple[Reservation, bool]:
        """The confirmed reservation and whether this call confirmed it."""
        return await self._db.run(self._confirm, user_id, reservation_id)

    async def release(self, user_id: str, reservation_id: str) -> tuple[Reservation, ReleaseResult]:
        return await self._db.run(self._release, user_id, reservation_id)

    async def reservations(self, user_id: str) -> list[Reservation]:
        """The user's reservations, oldest first."""
        return await self._db.run(_reservations, user_id)

    async def delete_user(self, user_id: str) -> bool:
        """Remove a user and its reservations (for contract provider states only); False when unknown."""
        return await self._db.run(_delete_user, user_id)

    # -- transactions, run on a worker thread ------------------------------------------------------

    def _create_user(self, conn: sqlite3.Connection, new: NewUser, event_id: str) -> User:
        with write_transaction(conn):
            now = self._now()  # inside the lock, so creation times follow commit order
            try:
                conn.execute(
                    "INSERT INTO users (id, name, email, credit, created_at) VALUES (?, ?, ?, ?, ?)",
                    (new.id, new.name, new.email, new.credit, _iso(now)),
                )
            except sqlite3.IntegrityError as exc:
                raise UserExists(new.id) from exc
            user = User(new.id, new.name, new.email, new.credit, reserved=0, created_at=now)
            enqueue(conn, event_id, USER_CREATED, user_created_event(user, event_id, now), now)
        return user

    def _reserve(
        self, conn: sqlite3.Connection, user_id: str, reservation_id: str, amount: int, order_id: str | None
    ) -> tuple[Reservation, bool]:
        with write_transaction(conn):
            user = _get_user(conn, user_id)
            existing = _reservation(conn, reservation_id)
            if existing is not None:
                _check_owner(existing, user_id)
                if existing.status is ReservationStatus.RELEASED:
                    raise ReservationReleased(reservation_id)
                if existing.amount != amount:
                    raise IdempotencyConflict(
                        f"Reservation {reservation_id!r} exists for amount {existing.amount}, not {amount}."
                    )
                return existing, False
            if amount > user.available:
                raise InsufficientCredit(user_id, amount, user.available)
            return _insert(conn, self._now(), user_id, reservation_id, amount, order_id), True

    def _confirm(
        self, conn: sqlite3.Connection, user_id: str, reservation_id: str
    ) -> tuple[Reservation, bool]:
        with write_transaction(conn):
            _get_user(conn, user_id)
            existing = _reservation(conn, reservation_id)
            if existing is None:
                raise UnknownReservation(user_id, reservation_id)
            _check_owner(existing, user_id)
            if existing.status is ReservationStatus.RELEASED:
                raise InvalidState(reservation_id, existing.status, "confirmed")
            if existing.status is ReservationStatus.CONFIRMED:
                return existing, False
            return _set_status(conn, self._now(), existing, ReservationStatus.CONFIRMED), True

    def _release(
        self, conn: sqlite3.Connection, user_id: str, reservation_id: str
    ) -> tuple[Reservation, ReleaseResult]:
        with write_transaction(conn):
            _get_user(conn, user_id)
            existing = _reservation(conn, reservation_id)
            if existing is None:
                # The compensation overtook the reserve it undoes: remember the id as released, so the
                # late reserve is refused instead of holding credit nobody will ever release.
                tombstone = _insert(
                    conn, self._now(), user_id, reservation_id, 0, None, ReservationStatus.RELEASED
                )
                return tombstone, ReleaseResult.TOMBSTONE
            _check_owner(existing, user_id)
            if existing.status is ReservationStatus.CONFIRMED:
                raise InvalidState(reservation_id, existing.status, "released")
            if existing.status is ReservationStatus.RELEASED:
                return existing, ReleaseResult.ALREADY_RELEASED
            return _set_status(
                conn, self._now(), existing, ReservationStatus.RELEASED
            ), ReleaseResult.RELEASED


def _get_user(conn: sqlite3.Connection, user_id: str) -> User:
    row = conn.execute(
        f"SELECT id, name, email, credit, created_at, {_RESERVED_SUM} FROM users WHERE id = :user_id",
        {"user_id": user_id},
    ).fetchone()
    if row is None:
        raise UnknownUser(user_id)
    return User(row[0], row[1], row[2], row[3], reserved=row[5], created_at=datetime.fromisoformat(row[4]))


def _delete_user(conn: sqlite3.Connection, user_id: str) -> bool:
    with write_transaction(conn):
        conn.execute("DELETE FROM reservations WHERE user_id = ?", (user_id,))
        return conn.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount > 0


def _reservations(conn: sqlite3.Connection, user_id: str) -> list[Reservation]:
    with read_transaction(conn):
        _get_user(conn, user_id)
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM reservations WHERE user_id = ? ORDER BY created_at, seq", (user_id,)
        ).fetchall()
    return [_from_row(row) for row in rows]


def _reservation(conn: sqlite3.Connection, reservation_id: str) -> Reservation | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM reservations WHERE reservation_id = ?", (reservation_id,)
    ).fetchone()
    return None if row is None else _from_row(row)


def _from_row(row: sqlite3.Row) -> Reservation:
    return Reservation(
        reservation_id=row[0],
        user_id=row[1],
        amount=row[2],
        status=ReservationStatus(row[3]),
        order_id=row[4],
        created_at=datetime.fromisoformat(row[5]),
    )


def _check_owner(reservation: Reservation, user_id: str) -> None:
    if reservation.user_id != user_id:
        raise IdempotencyConflict(
            f"Reservation id {reservation.reservation_id!r} is already used by another user."
        )


def _insert(
    conn: sqlite3.Connection,
    now: datetime,
    user_id: str,
    reservation_id: str,
    amount: int,
    order_id: str | None,
    status: ReservationStatus = ReservationStatus.RESERVED,
) -> Reservation:
    conn.execute(
        """INSERT INTO reservations
               (reservation_id, user_id, amount, status, order_id, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (reservation_id, user_id, amount, status.value, order_id, _iso(now), _iso(now)),
    )
    return Reservation(reservation_id, user_id, amount, status, order_id, now)


def _set_status(
    conn: sqlite3.Connection, now: datetime, reservation: Reservation, status: ReservationStatus
) -> Reservation:
    conn.execute(
        "UPDATE reservations SET status = ?, updated_at = ? WHERE reservation_id = ?",
        (status.value, _iso(now), reservation.reservation_id),
    )
    return Reservation(
        reservation.reservation_id,
        reservation.user_id,
        reservation.amount,
        status,
        reservation.order_id,
        reservation.created_at,
    )
