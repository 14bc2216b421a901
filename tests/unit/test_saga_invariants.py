"""The saga invariant checker on hand-made snapshots: each broken invariant is named, a clean one passes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.checks import (
    AnomalyKind,
    NotificationRecord,
    OrderRecord,
    ReservationRecord,
    SagaSnapshot,
    check_saga_invariants,
    find_anomalies,
)


def order(order_id: str, state: str, amount: int = 10, user: str = "u1") -> OrderRecord:
    return OrderRecord(order_id, user, amount, state)


def reservation(order_id: str, status: str, amount: int = 10) -> ReservationRecord:
    return ReservationRecord(f"order-{order_id}", order_id, status, amount)


def notified(order_id: str) -> NotificationRecord:
    return NotificationRecord(f"order-{order_id}-completed", "u1")


def clean() -> SagaSnapshot:
    """One order of each final kind: completed (confirmed, notified), compensated (released), and one
    needing attention after the pivot (confirmed, not notified yet)."""
    return SagaSnapshot(
        orders=[order("a", "COMPLETED"), order("b", "COMPENSATED"), order("c", "NEEDS_ATTENTION", 5)],
        reserved={"u1": 15},
        reservations={
            "u1": [
                reservation("a", "confirmed"),
                reservation("b", "released"),
                reservation("c", "confirmed", 5),
            ]
        },
        notifications={"u1": [notified("a")]},
    )


@pytest.mark.behaviour("saga.invariants")
def test_a_consistent_snapshot_has_no_violation() -> None:
    """Completed order holds its credit, the compensated one released it, one notification."""
    assert check_saga_invariants(clean()) == []


@pytest.mark.behaviour("saga.invariants")
def test_an_order_needing_attention_may_hold_its_credit_or_not() -> None:
    """Before or after its pivot: both are consistent (it is reported, not a violation)."""
    snapshot = clean()
    snapshot.reservations["u1"][2] = reservation("c", "released", 5)
    snapshot.reserved["u1"] = 10
    assert check_saga_invariants(snapshot) == []
    assert [o.order_id for o in snapshot.needing_attention()] == ["c"]


@pytest.mark.behaviour("saga.invariants")
@pytest.mark.parametrize(
    ("change", "kind", "expected"),
    [
        pytest.param(lambda s: s.orders.append(order("d", "NOTIFYING")), AnomalyKind.STUCK,
                     "order d is NOTIFYING", id="stuck-order"),
        pytest.param(lambda s: s.reserved.update(u1=26), AnomalyKind.CREDIT_NOT_CONSERVED,
                     "26 credit held, but completed orders sum to between 10 and 15", id="credit-mismatch"),
        pytest.param(lambda s: s.reservations["u1"].__setitem__(0, reservation("a", "reserved")),
                     AnomalyKind.CREDIT_NOT_CONSERVED, "completed order a holds no confirmed credit",
                     id="completed-not-confirmed"),
        pytest.param(lambda s: s.reservations["u1"].append(reservation("b", "reserved")),
                     AnomalyKind.RESERVATION_WITHOUT_ORDER, "holds credit without a completed order",
                     id="reservation-without-order"),
        pytest.param(lambda s: s.reservations["u1"].append(reservation("a", "reserved")),
                     AnomalyKind.DOUBLE_RESERVED, "more than one reservation holds credit for order a",
                     id="double-reservation"),
        pytest.param(lambda s: s.notifications["u1"].append(notified("a")),
                     AnomalyKind.DUPLICATE_NOTIFICATION, "delivered 2 times", id="double-notification"),
        pytest.param(lambda s: s.notifications["u1"].append(notified("b")),
                     AnomalyKind.NOTIFIED_THEN_COMPENSATED,
                     "order b was notified as confirmed, then compensated", id="notified-then-compensated"),
        pytest.param(lambda s: s.notifications["u1"].append(notified("x")),
                     AnomalyKind.NOTIFIED_UNCONFIRMED,
                     "order x was notified as confirmed, but its credit is not confirmed",
                     id="notified-unconfirmed"),
    ],
)  # fmt: skip
def test_each_broken_invariant_is_named(
    change: Callable[[SagaSnapshot], object], kind: AnomalyKind, expected: str
) -> None:
    """Breaking one invariant yields an anomaly of its kind first, with a sentence that says which."""
    snapshot = clean()
    change(snapshot)
    anomalies = find_anomalies(snapshot)
    assert anomalies, "the broken invariant went unnoticed"
    assert anomalies[0].kind is kind, anomalies
    assert expected in anomalies[0].message
