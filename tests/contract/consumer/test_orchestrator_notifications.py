"""orchestrator -> notifications: the saga's notify step, made by HttpParticipants through a ServiceClient."""

from __future__ import annotations

import pytest
from pact import Pact, match
from pact.interaction import HttpInteraction

from reference_services.orchestrator._log import Order, SagaState
from reference_services.orchestrator._participants import HttpParticipants
from reference_services.orchestrator._saga import Outcome, StepResult

from .._support import NewPact, error_body, timestamp
from ._clients import ORCHESTRATOR_CLIENT, RecordedSleeps, mock_client

CONSUMER, PROVIDER = "orchestrator", "notifications"
JSON = "application/json"


def order(n: int) -> Order:
    return Order(
        order_id=f"o-{n}",
        idempotency_key=f"key-{n}",
        user_id=f"u-{n}",
        amount=30,
        state=SagaState.NOTIFYING,
        reason=None,
        created_at="2024-05-01T10:00:00+00:00",
        updated_at="2024-05-01T10:00:00+00:00",
    )


def sent(o: Order) -> dict[str, str]:
    """Exactly what the orchestrator sends (a redelivery must repeat it exactly)."""
    return {
        "notification_id": o.notification_id,
        "user_id": o.user_id,
        "type": "order.completed",
        "message": f"Order {o.order_id} for {o.amount} is confirmed.",
    }


def notification_request(pact: Pact, description: str, o: Order) -> HttpInteraction:
    body = sent(o)
    return (
        pact.upon_receiving(description)
        .with_request("POST", "/notifications")
        .with_body(
            {
                "notification_id": match.str(body["notification_id"]),
                "user_id": match.str(body["user_id"]),
                "type": "order.completed",
                "message": match.str(body["message"]),
            },
            content_type=JSON,
        )
    )


def stored(o: Order) -> dict[str, object]:
    body = sent(o)
    return {
        "notification_id": match.str(body["notification_id"]),
        "user_id": match.str(body["user_id"]),
        "type": match.str(body["type"]),
        "message": match.str(body["message"]),
        "created_at": timestamp(),
    }


async def notify(pact: Pact, o: Order) -> StepResult:
    with pact.serve(addr="127.0.0.1") as server:
        async with mock_client("notifications", server, ORCHESTRATOR_CLIENT) as notifications:
            return await HttpParticipants(notifications, notifications).notify(o)


@pytest.mark.behaviour("contract.orchestrator-notifications")
class TestNotify:
    async def test_stores_the_notification(self, new_pact: NewPact) -> None:
        """201 with the stored notification: the step succeeds."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(1)
        (
            notification_request(pact, "a notification that an order completed", o)
            .given("no such notification", {"notification_id": o.notification_id})
            .will_respond_with(201)
            .with_body(stored(o), content_type=JSON)
        )
        assert (await notify(pact, o)).outcome is Outcome.OK

    async def test_a_redelivery_is_deduplicated(self, new_pact: NewPact) -> None:
        """The same notification again is 200 with the stored one: a re-driven saga still succeeds."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(2)
        (
            notification_request(pact, "a repeated notification that an order completed", o)
            .given("a stored notification", **sent(o))
            .will_respond_with(200)
            .with_body(stored(o), content_type=JSON)
        )
        assert (await notify(pact, o)).outcome is Outcome.OK

    async def test_a_conflicting_redelivery_is_rejected(self, new_pact: NewPact) -> None:
        """The id is stored with other content: 409, a clear no (the saga then needs attention)."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(4)
        (
            notification_request(pact, "a notification whose id is stored with other content", o)
            .given("a stored notification", **{**sent(o), "message": "Something else."})
            .will_respond_with(409)
            .with_body(error_body("idempotency_conflict"), content_type=JSON)
        )
        result = await notify(pact, o)
        assert (result.outcome, result.status) == (Outcome.REJECTED, 409)

    @pytest.mark.behaviour("retry.retry_after", "saga.pivot_rule")
    async def test_shedding_is_an_unknown_outcome(self, new_pact: NewPact) -> None:
        """503 overloaded with Retry-After: retried as asked, then UNKNOWN (the saga retries it later)."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(3)
        (
            notification_request(pact, "a notification while notifications sheds load", o)
            .given("notifications is shedding load")
            .will_respond_with(503)
            .with_header("Retry-After", match.regex("1", regex=r"^\d+$"))
            .with_body(error_body("overloaded"), content_type=JSON)
        )
        sleeps = RecordedSleeps()
        with pact.serve(addr="127.0.0.1") as server:
            async with mock_client("notifications", server, ORCHESTRATOR_CLIENT, sleeps) as notifications:
                result = await HttpParticipants(notifications, notifications).notify(o)
        assert result.outcome is Outcome.UNKNOWN
        assert set(sleeps.delays) == {1.0}
