"""Traffic a person can watch: customers with enough credit, then orders through the saga orchestrator."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from harness.errors import EnvironmentUnavailable
from harness.stack._stack import Stack

ORDERS_PER_CUSTOMER = 10


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    customer: str
    amount: int
    state: str
    status_code: int
    reason: str | None


def place_orders(
    stack: Stack,
    count: int,
    *,
    amount: int = 100,
    placed: Callable[[PlacedOrder], None] = lambda _order: None,
) -> list[PlacedOrder]:
    """Place ``count`` orders of ``amount``, spread over one customer per ten orders, each with credit
    for all of its orders (so every order can complete); ``placed`` hears of each as it is answered."""
    users = stack.instances("users")
    orchestrator = stack.instances("orchestrator")
    if not users or not orchestrator:
        raise EnvironmentUnavailable("placing orders needs at least one users and one orchestrator instance")
    run = uuid.uuid4().hex[:8]
    customers = [f"customer-{run}-{n}" for n in range(math.ceil(count / ORDERS_PER_CUSTOMER))]
    try:
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            for customer in customers:
                _create_customer(http, users[0].url, customer, amount * ORDERS_PER_CUSTOMER)
            results = []
            for n in range(count):
                order = _place(
                    http, orchestrator[0].url, customers[n % len(customers)], f"{run}-order-{n}", amount
                )
                placed(order)
                results.append(order)
            return results
    except (httpx.HTTPError, ValueError) as exc:
        raise EnvironmentUnavailable(f"placing orders failed: {exc!r}") from exc


def _create_customer(http: httpx.Client, users_url: str, customer: str, credit: int) -> None:
    created = http.post(f"{users_url}/users", json={"id": customer, "name": "Demo Customer",
                        "email": f"{customer}@example.test", "credit": credit})  # fmt: skip
    if created.status_code != 201:
        raise EnvironmentUnavailable(
            f"creating a customer failed: {created.status_code} {created.text[:200]}"
        )


def _place(http: httpx.Client, orchestrator_url: str, customer: str, key: str, amount: int) -> PlacedOrder:
    answer = http.post(f"{orchestrator_url}/orders", json={"user_id": customer, "amount": amount},
                       headers={"Idempotency-Key": key})  # fmt: skip
    body = answer.json()
    reason = body.get("reason") or body.get("message")
    return PlacedOrder(
        body.get("order_id", "?"), customer, amount, body.get("state", "?"), answer.status_code, reason
    )
