"""The saga's calls to users and notifications, through ServiceClient, mapped to step outcomes.

A clear no (REJECTED) is only a refusal the participant's contract defines: a 400, 404, 409 or 422 whose
body is the services' documented JSON error, ``{"error": <snake_case code>, "message": <sentence>}``.
Anything else without a success is a failure to deliver (UNKNOWN), because the call may have landed or
may never have been read: a transport error, a cut or unparseable answer, a 4xx from the server's HTTP
layer (uvicorn answers a request whose bytes a fault cut or garbled with a plain-text 400), a 5xx, an
open breaker everywhere. Only the status line and a body of that shape are trusted, never the status
alone.
"""

from __future__ import annotations

import httpx

from harness.discovery import ServiceClient
from harness.errors import CallError
from reference_services.common import contract_refusal

from ._log import Order
from ._saga import Outcome, StepResult

REFUSAL_STATUSES = frozenset({400, 404, 409, 422})
"""The statuses a participant's contract refuses a step with (always with a ``ContractRefusal`` body)."""


def step_result(response: httpx.Response) -> StepResult:
    """OK for a 2xx, REJECTED for a contract-defined refusal, UNKNOWN for every other answer."""
    detail = f"{response.status_code} {response.text[:200]}"
    if response.is_success:
        return StepResult(Outcome.OK, detail, response.status_code)
    if response.status_code in REFUSAL_STATUSES and contract_refusal(response) is not None:
        return StepResult(Outcome.REJECTED, detail, response.status_code)
    return StepResult(Outcome.UNKNOWN, f"{detail} (no refusal the contract defines: not delivered)",
                      response.status_code)  # fmt: skip


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
        return step_result(response)
