"""harness -> users and harness -> notifications: what the saga invariant checker reads.

``collect_saga_snapshot`` reads the orders from the orchestrator (a stub here: the orchestrator is no
verified provider), then per user its credit and reservations at users and its notifications. Paths are
literal: the known and the unknown user must reach different interactions of one mock server.
"""

from __future__ import annotations

import httpx
import pytest
import respx
from pact import match

from harness.checks import check_saga_invariants, collect_saga_snapshot

from .._support import NAME_REGEX, NewPact, error_body, timestamp

CONSUMER = "harness"
JSON = "application/json"
ORCHESTRATOR = "http://orchestrator.test"
KNOWN, UNKNOWN = "u-7", "u-8"
ORDERS = [
    {"order_id": "o-7", "user_id": KNOWN, "amount": 30, "state": "COMPLETED"},
    {"order_id": "o-8", "user_id": UNKNOWN, "amount": 5, "state": "COMPENSATED"},
]
RESERVATION: dict[str, object] = {
    "user_id": KNOWN,
    "credit": 100,
    "reservation_id": "order-o-7",
    "amount": 30,
    "order_id": "o-7",
    "status": "confirmed",
}
NOTIFICATION_ID, NOTIFICATION_TYPE, MESSAGE = (
    "order-o-7-completed",
    "order.completed",
    "Order o-7 for 30 is confirmed.",
)
NOTIFICATION: dict[str, object] = {
    "notification_id": NOTIFICATION_ID,
    "user_id": KNOWN,
    "type": NOTIFICATION_TYPE,
    "message": MESSAGE,
}


@pytest.mark.behaviour("contract.harness-users", "contract.harness-notifications", "saga.invariants")
def test_snapshot_reads_credit_reservations_and_notifications(new_pact: NewPact) -> None:
    """A user's held credit, its reservations and notifications; an unknown user (404) is skipped."""
    users = new_pact(CONSUMER, "users")
    (
        users.upon_receiving("a request for a user")
        .given("a user with a reservation", RESERVATION)
        .with_request("GET", f"/users/{KNOWN}")
        .will_respond_with(200)
        .with_body(
            {
                "id": match.str(KNOWN),
                "name": match.str("Ada Lovelace"),
                "email": match.str("ada@example.org"),
                "credit": match.int(100),
                "reserved": match.int(30),
                "available": match.int(70),
                "created_at": timestamp(),
            },
            content_type=JSON,
        )
    )
    (
        users.upon_receiving("a request for a user's reservations")
        .given("a user with a reservation", RESERVATION)
        .with_request("GET", f"/users/{KNOWN}/reservations")
        .will_respond_with(200)
        .with_body(
            {
                "reservations": match.each_like(
                    {
                        "reservation_id": match.str("order-o-7"),
                        "user_id": match.str(KNOWN),
                        "amount": match.int(30),
                        "status": match.regex("confirmed", regex="^(reserved|confirmed|released)$"),
                        "order_id": match.str("o-7"),
                        "created_at": timestamp(),
                    }
                )
            },
            content_type=JSON,
        )
    )
    (
        users.upon_receiving("a request for an unknown user")
        .given("no such user", {"user_id": UNKNOWN})
        .with_request("GET", f"/users/{UNKNOWN}")
        .will_respond_with(404)
        .with_body(error_body("not_found"), content_type=JSON)
    )
    notifications = new_pact(CONSUMER, "notifications")
    (
        notifications.upon_receiving("a request for a user's notifications")
        .given("a stored notification", NOTIFICATION)
        .with_request("GET", "/notifications")
        .with_query_parameter("user_id", match.regex(KNOWN, regex=f"^{NAME_REGEX}$"))
        .will_respond_with(200)
        .with_body(
            {
                "notifications": match.each_like(
                    {
                        "notification_id": match.str(NOTIFICATION_ID),
                        "user_id": match.str(KNOWN),
                        "type": match.str(NOTIFICATION_TYPE),
                        "message": match.str(MESSAGE),
                        "created_at": timestamp(),
                    }
                )
            },
            content_type=JSON,
        )
    )
    with (
        users.serve(addr="127.0.0.1") as users_server,
        notifications.serve(addr="127.0.0.1") as notifications_server,
        respx.mock(assert_all_called=True) as router,
    ):
        router.get(f"{ORCHESTRATOR}/orders").mock(return_value=httpx.Response(200, json={"orders": ORDERS}))
        router.route(host="127.0.0.1").pass_through()
        snapshot = collect_saga_snapshot(ORCHESTRATOR, str(users_server.url), str(notifications_server.url))
    assert snapshot.reserved == {KNOWN: 30}
    assert [r.reservation_id for r in snapshot.reservations[KNOWN]] == ["order-o-7"]
    assert [n.notification_id for n in snapshot.notifications[KNOWN]] == [NOTIFICATION_ID]
    assert check_saga_invariants(snapshot) == []
