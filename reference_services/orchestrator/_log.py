"""The durable saga log: orders and their step history in SQLite, written before every step.

Each step is logged as ``started`` together with the saga's new state in one transaction *before* the
participant is called, and as ``succeeded``/``failed`` after. After a crash, the state says where each
saga stood and the last ``started`` row without an outcome says which call may or may not have happened.
Every query runs on the shared worker-thread database layer, so a lock wait never blocks the event loop
(and a database busy for too long is the common 503 answer).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reference_services.common import Database, write_transaction

from ._steps import SAGA, SagaState, StepStatus

__all__ = ["IdempotencyConflict", "Order", "SagaLog", "SagaState", "StepRecord", "StepTries"]


@dataclass(frozen=True)
class Order:
    order_id: str
    idempotency_key: str
    user_id: str
    amount: int
    state: SagaState
    reason: str | None
    created_at: str
    updated_at: str
    stalled_in: SagaState | None = None  # with NEEDS_ATTENTION: the state the saga could not leave

    @property
    def reservation_id(self) -> str:
        """Idempotency key of every credit call for this saga, derived from the saga id."""
        return f"order-{self.order_id}"

    @property
    def notification_id(self) -> str:
        return f"order-{self.order_id}-completed"


@dataclass(frozen=True)
class StepRecord:
    seq: int
    step: str
    status: str
    detail: str
    at: str


@dataclass(frozen=True)
class StepTries:
    """How one step has gone since the saga was created or last resumed (what its deadline reads)."""

    attempts: int  # times it was started
    first_started: datetime | None  # when it was first started; None: never
    overdue: bool  # an ``overdue`` row was written for it


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different order."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    stalled_in TEXT
);
CREATE INDEX IF NOT EXISTS orders_state ON orders(state);
CREATE TABLE IF NOT EXISTS saga_log (
    order_id TEXT NOT NULL REFERENCES orders(order_id),
    seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);
"""


SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SagaLog:
    """Orders and saga steps in one SQLite file (WAL); every write is its own short transaction.

    ``open`` creates the file, applies the schema and migrates a log an earlier version wrote."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA, connections=2, name="saga-log")

    async def open(self) -> SagaLog:
        await self._db.open()
        await self._db.run(_migrate)
        return self

    async def close(self) -> None:
        await self._db.close()

    async def create_order(self, idempotency_key: str, user_id: str, amount: int) -> tuple[Order, bool]:
        """The order for this key: a new PENDING one (True), or the one created before (False)."""
        return await self._db.run(_create_order, idempotency_key, user_id, amount)

    async def transition(
        self,
        order_id: str,
        step: str,
        status: str,
        state: SagaState,
        detail: dict[str, Any] | None = None,
        *,
        reason: str | None = None,
    ) -> Order:
        """Append one log row and move the saga to ``state``, atomically."""
        return await self._db.run(_transition, order_id, step, status, state, detail or {}, reason)

    async def stall(self, order_id: str, step: str, stalled_in: SagaState, reason: str) -> Order:
        """Give up on ``step`` for now: NEEDS_ATTENTION, remembering where the saga stood."""
        return await self._db.run(_stall, order_id, step, stalled_in, reason)

    async def resume(self, order_id: str) -> Order | None:
        """Send a NEEDS_ATTENTION saga back to where it stalled, with fresh step deadlines; None if unknown.

        A saga in any other state is returned as it is (resuming is idempotent)."""
        return await self._db.run(_resume, order_id)

    async def tries(self, order_id: str, step: str) -> StepTries:
        """How ``step`` has gone since the saga was created or last resumed."""
        return await self._db.run(_tries, order_id, step)

    async def attempts(self, order_id: str, step: str) -> int:
        """How often ``step`` was started since the saga was created or last resumed."""
        return (await self.tries(order_id, step)).attempts

    async def get(self, order_id: str) -> Order | None:
        return await self._db.run(_get, order_id)

    async def steps(self, order_id: str) -> list[StepRecord]:
        return await self._db.run(_steps, order_id)

    async def orders(
        self, *, state: SagaState | None = None, user_id: str | None = None, limit: int = 1000
    ) -> list[Order]:
        return await self._db.run(_orders, state, user_id, limit)

    async def unfinished(self) -> list[str]:
        """Ids of every saga that should still move on by itself (not final), oldest first."""
        return await self._db.run(_unfinished)

    async def counts(self) -> dict[str, int]:
        return await self._db.run(_counts)

    async def healthy(self) -> bool:
        """Can the log be read right now (for readiness)?"""
        return await self._db.reachable()


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a log written by an earlier version up to ``SCHEMA_VERSION``, once, atomically."""
    with write_transaction(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:
            return
        columns = {row["name"] for row in db.execute("PRAGMA table_info(orders)")}
        if "stalled_in" not in columns:
            db.execute("ALTER TABLE orders ADD COLUMN stalled_in TEXT")
        # Version 0 notified before confirming the credit. A saga it left in NOTIFYING has not confirmed
        # yet: it goes forward from the pivot (the notification is deduplicated by id).
        db.execute(
            "UPDATE orders SET state = ? WHERE state = ?", (SagaState.CONFIRMING_CREDIT, SagaState.NOTIFYING)
        )
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _create_order(
    db: sqlite3.Connection, idempotency_key: str, user_id: str, amount: int
) -> tuple[Order, bool]:
    with write_transaction(db):
        row = db.execute("SELECT * FROM orders WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        if row is not None:
            existing = _order(row)
            if (existing.user_id, existing.amount) != (user_id, amount):
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was used for order {existing.order_id} "
                    f"(user {existing.user_id!r}, amount {existing.amount})"
                )
            return existing, False
        now = _now()
        order_id = uuid.uuid4().hex
        db.execute(
            "INSERT INTO orders (order_id, idempotency_key, user_id, amount, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order_id, idempotency_key, user_id, amount, SagaState.PENDING, now, now),
        )
        _append(db, order_id, SAGA, StepStatus.CREATED, {"user_id": user_id, "amount": amount}, now)
        return _must_get(db, order_id), True


def _transition(
    db: sqlite3.Connection, order_id: str, step: str, status: str, state: SagaState, detail: dict[str, Any],
    reason: str | None,
) -> Order:  # fmt: skip
    now = _now()
    with write_transaction(db):
        _append(db, order_id, step, status, detail, now)
        if reason is None:
            db.execute(
                "UPDATE orders SET state = ?, updated_at = ? WHERE order_id = ?", (state, now, order_id)
            )
        else:
            db.execute(
                "UPDATE orders SET state = ?, reason = ?, updated_at = ? WHERE order_id = ?",
                (state, reason, now, order_id),
            )
        return _must_get(db, order_id)


def _stall(db: sqlite3.Connection, order_id: str, step: str, stalled_in: SagaState, reason: str) -> Order:
    now = _now()
    with write_transaction(db):
        _append(db, order_id, step, StepStatus.STALLED, {"reason": reason}, now)
        db.execute(
            "UPDATE orders SET state = ?, stalled_in = ?, reason = ?, updated_at = ? WHERE order_id = ?",
            (SagaState.NEEDS_ATTENTION, stalled_in, reason, now, order_id),
        )
        return _must_get(db, order_id)


def _resume(db: sqlite3.Connection, order_id: str) -> Order | None:
    now = _now()
    with write_transaction(db):
        order = _get(db, order_id)
        if order is None:
            return None
        if order.state is SagaState.NEEDS_ATTENTION and order.stalled_in is not None:
            _append(db, order_id, SAGA, StepStatus.RESUMED, {"state": order.stalled_in}, now)
            db.execute(
                "UPDATE orders SET state = ?, stalled_in = NULL, updated_at = ? WHERE order_id = ?",
                (order.stalled_in, now, order_id),
            )
        return _must_get(db, order_id)


def _tries(db: sqlite3.Connection, order_id: str, step: str) -> StepTries:
    row = db.execute(
        "SELECT SUM(status = :started), MIN(CASE WHEN status = :started THEN at END), "
        "COALESCE(MAX(status = :overdue), 0) FROM saga_log WHERE order_id = :id AND step = :step "
        "AND seq > (SELECT COALESCE(MAX(seq), 0) FROM saga_log WHERE order_id = :id AND step = :saga "
        "AND status = :resumed)",
        {"id": order_id, "step": step, "started": StepStatus.STARTED, "overdue": StepStatus.OVERDUE,
         "saga": SAGA, "resumed": StepStatus.RESUMED},
    ).fetchone()  # fmt: skip
    first = datetime.fromisoformat(row[1]) if row[1] is not None else None
    return StepTries(attempts=int(row[0] or 0), first_started=first, overdue=bool(row[2]))


def _append(
    db: sqlite3.Connection, order_id: str, step: str, status: str, detail: dict[str, Any], at: str
) -> None:
    db.execute(
        "INSERT INTO saga_log SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? "
        "FROM saga_log WHERE order_id = ?",
        (order_id, step, status, json.dumps(detail, separators=(",", ":")), at, order_id),
    )


def _get(db: sqlite3.Connection, order_id: str) -> Order | None:
    row = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    return _order(row) if row is not None else None


def _must_get(db: sqlite3.Connection, order_id: str) -> Order:
    order = _get(db, order_id)
    if order is None:
        raise KeyError(order_id)
    return order


def _steps(db: sqlite3.Connection, order_id: str) -> list[StepRecord]:
    rows = db.execute(
        "SELECT seq, step, status, detail, at FROM saga_log WHERE order_id = ? ORDER BY seq", (order_id,)
    ).fetchall()
    return [StepRecord(r["seq"], r["step"], r["status"], r["detail"], r["at"]) for r in rows]


def _orders(db: sqlite3.Connection, state: SagaState | None, user_id: str | None, limit: int) -> list[Order]:
    query, args = "SELECT * FROM orders WHERE 1 = 1", list[str]()
    if state is not None:
        query, args = query + " AND state = ?", [*args, state]
    if user_id is not None:
        query, args = query + " AND user_id = ?", [*args, user_id]
    rows = db.execute(query + " ORDER BY created_at, order_id LIMIT ?", (*args, limit)).fetchall()
    return [_order(r) for r in rows]


def _unfinished(db: sqlite3.Connection) -> list[str]:
    final = [state for state in SagaState if state.final]
    rows = db.execute(
        f"SELECT order_id FROM orders WHERE state NOT IN ({', '.join('?' * len(final))}) ORDER BY created_at",
        final,
    ).fetchall()
    return [r["order_id"] for r in rows]


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    rows = db.execute("SELECT state, COUNT(*) AS n FROM orders GROUP BY state").fetchall()
    return {r["state"]: r["n"] for r in rows}


def _order(row: sqlite3.Row) -> Order:
    return Order(
        order_id=row["order_id"],
        idempotency_key=row["idempotency_key"],
        user_id=row["user_id"],
        amount=row["amount"],
        state=SagaState(row["state"]),
        reason=row["reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        stalled_in=SagaState(row["stalled_in"]) if row["stalled_in"] else None,
    )
