"""The saga invariant checker on hand-made snapshots: each broken invariant is named, a clean one passes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.checks import SagaSnapshot, check_saga_invariants


def order(order_id: str, state: str, amount: int = 10, user: str = "u1") -> dict[str, object]:
    return {"order_id": order_id, "state": state, "amount": amount, "user_id": user}


def reservation(order_id: str, status: str, amount: int = 10) -> dict[str, object]:
    return {"reservation_id": f"order-{order_id}", "order_id": order_id, "status": status, "amount": amount}


def clean() -> SagaSnapshot:
    return SagaSnapshot(
        orders=[order("a", "COMPLETED"), order("b", "COMPENSATED")],
        reserved={"u1": 10},
        reservations={"u1": [reservation("a", "confirmed"), reservation("b", "released")]},
        notifications={"u1": [{"notification_id": "order-a-completed"}]},
    )


def test_a_consistent_snapshot_has_no_violation() -> None:
    """Completed order holds its credit, the compensated one released it, one notification."""
    assert check_saga_invariants(clean()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(lambda s: s.orders.append(order("c", "NOTIFYING")), "neither COMPLETED nor COMPENSATED",
                     id="stuck-order"),
        pytest.param(lambda s: s.reserved.update(u1=20), "20 credit held, but completed orders sum to 10",
                     id="credit-mismatch"),
        pytest.param(lambda s: s.reservations["u1"].append(reservation("b", "reserved")),
                     "holds credit without a completed order", id="reservation-without-order"),
        pytest.param(lambda s: s.reservations["u1"].append(reservation("a", "reserved")),
                     "more than one reservation for order(s) a", id="double-reservation"),
        pytest.param(lambda s: s.notifications["u1"].append({"notification_id": "order-a-completed"}),
                     "delivered more than once", id="double-notification"),
    ],
)  # fmt: skip
def test_each_broken_invariant_is_named(change: Callable[[SagaSnapshot], object], expected: str) -> None:
    """Breaking one invariant yields a sentence that says which."""
    snapshot = clean()
    change(snapshot)
    violations = check_saga_invariants(snapshot)
    assert any(expected in v for v in violations), violations
