"""The saga invariants of DESIGN.md, checked on a snapshot of the system's state after any fault.

Collecting (``_saga_sources``: over HTTP, or straight from the services' databases) and checking (here,
pure) are separate, so tests, chaos probes and ``harness check saga`` check any snapshot the same way.
Orders are read as the orchestrator reports them; the checker knows the saga's semantics (the pivot is
confirming the credit, the customer is told after it) but none of the orchestrator's code.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

COMPLETED, COMPENSATED, NEEDS_ATTENTION = "COMPLETED", "COMPENSATED", "NEEDS_ATTENTION"
FINAL = frozenset({COMPLETED, COMPENSATED, NEEDS_ATTENTION})
HOLDING = frozenset({"reserved", "confirmed"})  # reservation states that hold credit


class AnomalyKind(enum.StrEnum):
    """Every way the saga's promises can be broken; the value is how reports name it."""

    STUCK = "stuck"
    CREDIT_NOT_CONSERVED = "credit not conserved"
    RESERVATION_WITHOUT_ORDER = "reservation without an order"
    DOUBLE_RESERVED = "double reserved"
    DUPLICATE_NOTIFICATION = "duplicate notification"
    NOTIFIED_THEN_COMPENSATED = "notified, then compensated"
    NOTIFIED_UNCONFIRMED = "notified without confirmed credit"
    ACKNOWLEDGED_MISSING = "acknowledged but missing"
    LOST = "acknowledged outcome lost"
    FAILED_BUT_PRESENT = "failed but present"
    KEY_NOT_IDEMPOTENT = "idempotency key not idempotent"
    PHANTOM = "order nobody asked for"


@dataclass(frozen=True)
class Anomaly:
    kind: AnomalyKind
    subject: str  # the order, user or key it is about
    message: str


@dataclass(frozen=True)
class OrderRecord:
    order_id: str
    user_id: str
    amount: int
    state: str
    stalled_in: str | None = None
    idempotency_key: str | None = None

    @property
    def reservation_id(self) -> str:
        return f"order-{self.order_id}"

    @property
    def notification_id(self) -> str:
        return f"order-{self.order_id}-completed"


@dataclass(frozen=True)
class ReservationRecord:
    reservation_id: str
    order_id: str | None
    status: str
    amount: int


@dataclass(frozen=True)
class NotificationRecord:
    notification_id: str
    user_id: str


@dataclass(frozen=True)
class DeadLetterRecord:
    event_id: str
    type: str
    reason: str


@dataclass
class SagaSnapshot:
    """Orders; per user the credit users says it holds, its reservations and notifications; dead letters."""

    orders: list[OrderRecord]
    reserved: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, list[ReservationRecord]] = field(default_factory=dict)
    notifications: dict[str, list[NotificationRecord]] = field(default_factory=dict)
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)

    def needing_attention(self) -> list[OrderRecord]:
        return [o for o in self.orders if o.state == NEEDS_ATTENTION]


def check_saga_invariants(snapshot: SagaSnapshot) -> list[str]:
    """Every violation as one sentence; an empty list means every invariant holds."""
    return [anomaly.message for anomaly in find_anomalies(snapshot)]


def find_anomalies(snapshot: SagaSnapshot) -> list[Anomaly]:
    """Every broken invariant of the snapshot, typed, one per order, user or notification concerned."""
    orders = {o.order_id: o for o in snapshot.orders}
    anomalies = [
        Anomaly(
            AnomalyKind.STUCK,
            o.order_id,
            f"order {o.order_id} is {o.state}, not COMPLETED, COMPENSATED or NEEDS_ATTENTION",
        )
        for o in snapshot.orders
        if o.state not in FINAL
    ]
    anomalies += _credit(snapshot, orders)
    anomalies += _notifications(snapshot, orders)
    return anomalies


def _order_of(reservation: ReservationRecord) -> str:
    if reservation.order_id:
        return reservation.order_id
    return reservation.reservation_id.removeprefix("order-")


def _credit(snapshot: SagaSnapshot, orders: dict[str, OrderRecord]) -> list[Anomaly]:
    found: list[Anomaly] = []
    confirmed: dict[str, ReservationRecord] = {}
    for user, reservations in sorted(snapshot.reservations.items()):
        holding: Counter[str] = Counter()
        for reservation in reservations:
            if reservation.status not in HOLDING:
                continue
            order_id = _order_of(reservation)
            holding[order_id] += 1
            if reservation.status == "confirmed":
                confirmed[order_id] = reservation
            order = orders.get(order_id)
            if order is None or order.state not in (COMPLETED, NEEDS_ATTENTION):
                found.append(Anomaly(AnomalyKind.RESERVATION_WITHOUT_ORDER, order_id,
                                     f"user {user}: reservation {reservation.reservation_id} holds credit "
                                     "without a completed order"))  # fmt: skip
        found += [
            Anomaly(AnomalyKind.DOUBLE_RESERVED, order_id,
                    f"user {user}: more than one reservation holds credit for order {order_id}")
            for order_id, n in sorted(holding.items()) if n > 1
        ]  # fmt: skip
    completed: Counter[str] = Counter()
    undecided: Counter[str] = Counter()
    for order in orders.values():
        if order.state == COMPLETED:
            completed[order.user_id] += order.amount
            held = confirmed.get(order.order_id)
            if held is None or held.amount != order.amount:
                found.append(Anomaly(AnomalyKind.CREDIT_NOT_CONSERVED, order.order_id,
                                     f"user {order.user_id}: completed order {order.order_id} holds no "
                                     f"confirmed credit of {order.amount}"))  # fmt: skip
        elif order.state == NEEDS_ATTENTION:
            undecided[order.user_id] += order.amount
    for user, held_now in sorted(snapshot.reserved.items()):
        low, high = completed[user], completed[user] + undecided[user]
        if not low <= held_now <= high:
            bound = f"{low}" if low == high else f"between {low} and {high} (orders needing attention)"
            found.append(Anomaly(AnomalyKind.CREDIT_NOT_CONSERVED, user,
                                 f"user {user}: {held_now} credit held, but completed orders sum to "
                                 f"{bound}"))  # fmt: skip
    return found


def _notifications(snapshot: SagaSnapshot, orders: dict[str, OrderRecord]) -> list[Anomaly]:
    found: list[Anomaly] = []
    confirmed = {
        _order_of(r)
        for reservations in snapshot.reservations.values()
        for r in reservations
        if r.status == "confirmed"
    }
    per_order: dict[str, str] = {}  # order id -> the user notified
    for user, notifications in sorted(snapshot.notifications.items()):
        for nid, n in sorted(Counter(x.notification_id for x in notifications).items()):
            if n > 1:
                found.append(Anomaly(AnomalyKind.DUPLICATE_NOTIFICATION, nid,
                                     f"user {user}: notification {nid} delivered {n} times"))  # fmt: skip
        for notification in notifications:
            nid = notification.notification_id
            if nid.startswith("order-") and nid.endswith("-completed"):
                per_order[nid.removeprefix("order-").removesuffix("-completed")] = user
    for order_id, user in sorted(per_order.items()):
        order = orders.get(order_id)
        if order is not None and order.state == COMPENSATED:
            message = f"order {order_id} was notified as confirmed, then compensated"
            found.append(Anomaly(AnomalyKind.NOTIFIED_THEN_COMPENSATED, order_id, message))
        elif user in snapshot.reservations and order_id not in confirmed:
            found.append(Anomaly(AnomalyKind.NOTIFIED_UNCONFIRMED, order_id,
                                 f"order {order_id} was notified as confirmed, but its credit is not "
                                 "confirmed"))  # fmt: skip
    return found
