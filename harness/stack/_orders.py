"""Traffic a person can watch: a customer with credit, then orders through the saga orchestrator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from harness.errors import EnvironmentUnavailable
from harness.stack._stack import Stack


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    amount: int
    state: str
    status_code: int


def place_orders(stack: Stack, count: int, *, amount: int = 100, credit: int = 1_000) -> list[PlacedOrder]:
    """Create a customer with ``credit`` and place ``count`` orders of ``amount``; beyond the credit the
    saga compensates, which the result shows as COMPENSATED orders."""
    users = stack.instances("users")
    orchestrator = stack.instances("orchestrator")
    if not users or not orchestrator:
        raise EnvironmentUnavailable("placing orders needs at least one users and one orchestrator instance")
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    try:
        return _place(users[0].url, orchestrator[0].url, customer, count, amount, credit)
    except (httpx.HTTPError, ValueError) as exc:
        raise EnvironmentUnavailable(f"placing orders failed: {exc!r}") from exc


def _place(users_url: str, orchestrator_url: str, customer: str, count: int, amount: int, credit: int
           ) -> list[PlacedOrder]:  # fmt: skip
    placed = []
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        created = http.post(
            f"{users_url}/users",
            json={
                "id": customer,
                "name": "Demo Customer",
                "email": f"{customer}@example.test",
                "credit": credit,
            },
        )
        if created.status_code != 201:
            raise EnvironmentUnavailable(
                f"creating a customer failed: {created.status_code} {created.text[:200]}"
            )
        for n in range(count):
            answer = http.post(
                f"{orchestrator_url}/orders",
                json={"user_id": customer, "amount": amount},
                headers={"Idempotency-Key": f"{customer}-order-{n}"},
            )
            body = answer.json()
            placed.append(
                PlacedOrder(body.get("order_id", "?"), amount, body.get("state", "?"), answer.status_code)
            )
    return placed
