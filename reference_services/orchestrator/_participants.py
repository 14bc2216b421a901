"""The saga's calls to users and notifications, through ServiceClient, mapped to step outcomes.

Only a clear business answer (400, 404, 409, 422) counts as REJECTED; anything without a clear answer
(transport errors, 5xx, an open breaker everywhere) is UNKNOWN, because the call may have landed.
"""

from __future__ import annotations

import httpx

from harness.discovery import ServiceClient
from harness.errors import CallError

from ._log import Order
from ._saga import Outcome, StepResult

REJECTIONS = frozenset({400, 404, 409, 422})


class HttpParticipants:
    """Participants reached by name through discovery; each call carries the step's idempotency key."""

    def __init__(self, users: ServiceClient, notifications: ServiceClient) -> None:
        self.users = users
        self.notifications = notifications

    async def reserve_credit(self, order: Order) -> StepResult:
        return await self._call(
            self.users,
            f"/users/{order.user_id}/reservations",
            order.reservation_id,
            {"reservation_id": order.reservation_id, "amount": order.amount, "order_id": order.order_id},
        )

    async def release_credit(self, order: Order) -> StepResult:
        result = await self._call(
            self.users,
            f"/users/{order.user_id}/reservations/{order.reservation_id}/release",
            order.reservation_id,
        )
        if result.outcome is Outcome.REJECTED and result.status == 404:
            return StepResult(Outcome.OK, "no such user: nothing to release", result.status)
        return result

    async def confirm_credit(self, order: Order) -> StepResult:
        return await self._call(
            self.users,
            f"/users/{order.user_id}/reservations/{order.reservation_id}/confirm",
            order.reservation_id,
        )

    async def notify(self, order: Order) -> StepResult:
        """Tell the customer; runs after the pivot, and a redelivery with the same id is deduplicated."""
        return await self._call(
            self.notifications,
            "/notifications",
            order.notification_id,
            {
                "notification_id": order.notification_id,
                "user_id": order.user_id,
                "type": "order.completed",
                "message": f"Order {order.order_id} for {order.amount} is confirmed.",
            },
        )

    @staticmethod
    async def _call(client: ServiceClient, path: str, key: str, body: object = None) -> StepResult:
        try:
            response = await client.post(path, json=body, headers={"Idempotency-Key": key})
        except CallError as exc:
            return StepResult(Outcome.UNKNOWN, f"{type(exc).__name__}: {exc}")
        return _result(response)


def _result(response: httpx.Response) -> StepResult:
    detail = f"{response.status_code} {response.text[:200]}"
    if response.is_success:
        outcome = Outcome.OK
    elif response.status_code in REJECTIONS:
        outcome = Outcome.REJECTED
    else:
        outcome = Outcome.UNKNOWN
    return StepResult(outcome, detail, response.status_code)
