"""The saga invariants of DESIGN.md, checked on a snapshot of the stack's state after any fault.

Collecting (HTTP) and checking (pure) are separate so tests and chaos probes can check any snapshot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx

TERMINAL = frozenset({"COMPLETED", "COMPENSATED"})
HOLDING = frozenset({"reserved", "confirmed"})  # reservation states that hold credit


@dataclass(frozen=True)
class SagaSnapshot:
    """Orders, and per user: credit held, reservations and notifications."""

    orders: list[dict[str, object]]
    reserved: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    notifications: dict[str, list[dict[str, object]]] = field(default_factory=dict)


def check_saga_invariants(snapshot: SagaSnapshot) -> list[str]:
    """Every violation as one sentence; an empty list means every invariant holds."""
    violations: list[str] = []
    orders = {str(o["order_id"]): o for o in snapshot.orders}
    stuck = [f"{oid} {o['state']}" for oid, o in orders.items() if o["state"] not in TERMINAL]
    if stuck:
        violations.append(f"{len(stuck)} order(s) neither COMPLETED nor COMPENSATED: {', '.join(stuck[:5])}")
    completed: Counter[str] = Counter()
    for order in orders.values():
        if order["state"] == "COMPLETED":
            completed[str(order["user_id"])] += int(str(order["amount"]))
    for user, held in sorted(snapshot.reserved.items()):
        if held != completed[user]:
            violations.append(
                f"user {user}: {held} credit held, but completed orders sum to {completed[user]}"
            )
    for user, reservations in sorted(snapshot.reservations.items()):
        per_order: Counter[str] = Counter()
        for reservation in reservations:
            order_id = str(reservation.get("order_id") or "")
            if reservation["status"] in HOLDING:
                per_order[order_id] += 1
                if orders.get(order_id, {}).get("state") != "COMPLETED":
                    violations.append(
                        f"user {user}: reservation {reservation['reservation_id']} holds credit without a "
                        f"completed order"
                    )
        doubled = [order_id for order_id, n in per_order.items() if n > 1]
        if doubled:
            violations.append(f"user {user}: more than one reservation for order(s) {', '.join(doubled)}")
    for user, notifications in sorted(snapshot.notifications.items()):
        ids = Counter(str(n["notification_id"]) for n in notifications)
        repeated = [nid for nid, n in ids.items() if n > 1]
        if repeated:
            violations.append(f"user {user}: notification(s) delivered more than once: {', '.join(repeated)}")
    return violations


def collect_saga_snapshot(
    orchestrator_url: str, users_url: str, notifications_url: str, *, timeout: float = 10.0
) -> SagaSnapshot:
    """Read the orders and, for every user that has one, its credit, reservations and notifications."""
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        orders = (
            http.get(f"{orchestrator_url}/orders", params={"limit": 10_000})
            .raise_for_status()
            .json()["orders"]
        )
        snapshot = SagaSnapshot(orders=orders)
        for user in sorted({str(o["user_id"]) for o in orders}):
            answer = http.get(f"{users_url}/users/{user}")
            if answer.status_code == 404:
                continue
            snapshot.reserved[user] = int(answer.raise_for_status().json()["reserved"])
            snapshot.reservations[user] = (
                http.get(f"{users_url}/users/{user}/reservations").raise_for_status().json()["reservations"]
            )
            snapshot.notifications[user] = (
                http.get(f"{notifications_url}/notifications", params={"user_id": user})
                .raise_for_status()
                .json()["notifications"]
            )
    return snapshot
