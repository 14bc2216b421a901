"""orchestrator -> users: the saga's credit calls, made by HttpParticipants through a ServiceClient."""

from __future__ import annotations

import pytest
from pact import Pact, match
from pact.interaction import HttpInteraction
from pact.match.matcher import AbstractMatcher

from reference_services.orchestrator._log import Order, SagaState
from reference_services.orchestrator._participants import HttpParticipants
from reference_services.orchestrator._saga import Outcome, StepResult

from .._support import KEY_REGEX, NAME_REGEX, NewPact, error_body, timestamp
from ._clients import ORCHESTRATOR_CLIENT, RecordedSleeps, mock_client

CONSUMER, PROVIDER = "orchestrator", "users"
JSON = "application/json"


def order(n: int, amount: int = 30) -> Order:
    return Order(
        order_id=f"o-{n}",
        idempotency_key=f"key-{n}",
        user_id=f"u-{n}",
        amount=amount,
        state=SagaState.RESERVING_CREDIT,
        reason=None,
        created_at="2024-05-01T10:00:00+00:00",
        updated_at="2024-05-01T10:00:00+00:00",
    )


def path(template: str, example: str) -> AbstractMatcher[object]:
    """A path matcher: ``template`` has ``{user}`` and ``{key}`` where ids go."""
    regex = "^" + template.format(user=NAME_REGEX, key=KEY_REGEX) + "$"
    return match.regex(example, regex=regex)


def reservation(o: Order, status: str) -> dict[str, object]:
    return {
        "reservation_id": match.str(o.reservation_id),
        "user_id": match.str(o.user_id),
        "amount": match.int(o.amount),
        "status": status,
        "order_id": match.str(o.order_id),
        "created_at": timestamp(),
    }


def reserve_request(pact: Pact, description: str, o: Order) -> HttpInteraction:
    return (
        pact.upon_receiving(description)
        .with_request("POST", path("/users/{user}/reservations", f"/users/{o.user_id}/reservations"))
        .with_body(
            {
                "reservation_id": match.regex(o.reservation_id, regex=f"^{KEY_REGEX}$"),
                "amount": match.int(o.amount),
                "order_id": match.str(o.order_id),
            },
            content_type=JSON,
        )
    )


def with_user(o: Order, credit: int = 100) -> dict[str, object]:
    return {"user_id": o.user_id, "credit": credit}


def with_reservation(o: Order, status: str) -> dict[str, object]:
    return {
        "user_id": o.user_id,
        "credit": 100,
        "reservation_id": o.reservation_id,
        "amount": o.amount,
        "order_id": o.order_id,
        "status": status,
    }


async def call(pact: Pact, step: str, o: Order, sleeps: RecordedSleeps | None = None) -> StepResult:
    with pact.serve(addr="127.0.0.1") as server:
        async with mock_client("users", server, ORCHESTRATOR_CLIENT, sleeps) as users:
            participants = HttpParticipants(users, users)
            result: StepResult = await getattr(participants, step)(o)
    return result


@pytest.mark.behaviour("contract.orchestrator-users")
class TestReserveCredit:
    async def test_reserves(self, new_pact: NewPact) -> None:
        """201 with the reservation: the step succeeds."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(1)
        (
            reserve_request(pact, "a request to reserve credit", o)
            .given("a user with available credit", with_user(o))
            .will_respond_with(201)
            .with_body(reservation(o, "reserved"), content_type=JSON)
        )
        assert (await call(pact, "reserve_credit", o)).outcome is Outcome.OK

    @pytest.mark.behaviour("users.idempotent_reservations")
    async def test_replay_answers_the_first_reservation(self, new_pact: NewPact) -> None:
        """The same reservation id again is 200 with the reservation made earlier: still a success."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(2)
        (
            reserve_request(pact, "a repeated request to reserve credit", o)
            .given("a user with a reservation", with_reservation(o, "reserved"))
            .will_respond_with(200)
            .with_body(reservation(o, "reserved"), content_type=JSON)
        )
        assert (await call(pact, "reserve_credit", o)).outcome is Outcome.OK

    @pytest.mark.behaviour("saga.compensation")
    async def test_insufficient_credit_is_a_rejection(self, new_pact: NewPact) -> None:
        """409 insufficient_credit with the available amount: the saga compensates."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(3, amount=30)
        (
            reserve_request(pact, "a request to reserve more credit than available", o)
            .given("a user with available credit", with_user(o, credit=10))
            .will_respond_with(409)
            .with_body({**error_body("insufficient_credit"), "available": match.int(10)}, content_type=JSON)
        )
        result = await call(pact, "reserve_credit", o)
        assert result.outcome is Outcome.REJECTED
        assert "insufficient_credit" in result.detail

    async def test_unknown_user_is_a_rejection(self, new_pact: NewPact) -> None:
        """404 not_found: the saga compensates."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(4)
        (
            reserve_request(pact, "a request to reserve credit for an unknown user", o)
            .given("no such user", {"user_id": o.user_id})
            .will_respond_with(404)
            .with_body(error_body("not_found"), content_type=JSON)
        )
        assert (await call(pact, "reserve_credit", o)).outcome is Outcome.REJECTED

    async def test_invalid_request_is_a_rejection(self, new_pact: NewPact) -> None:
        """422 validation_error with details: a clear refusal, not an unknown outcome."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(5, amount=0)
        detail = {
            "loc": match.each_like(match.str("body")),
            "msg": match.str("..."),
            "type": match.str("..."),
        }
        body = {**error_body("validation_error"), "details": match.each_like(detail)}
        (
            reserve_request(pact, "an invalid request to reserve credit", o)
            .given("a user with available credit", with_user(o))
            .will_respond_with(422)
            .with_body(body, content_type=JSON)
        )
        assert (await call(pact, "reserve_credit", o)).outcome is Outcome.REJECTED

    @pytest.mark.behaviour("retry.retry_after")
    async def test_shedding_is_retried_after_retry_after(self, new_pact: NewPact) -> None:
        """503 overloaded with Retry-After: retried after the time asked, then an unknown outcome."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(6)
        (
            reserve_request(pact, "a request to reserve credit while users sheds load", o)
            .given("users is shedding load")
            .will_respond_with(503)
            .with_header("Retry-After", match.regex("1", regex=r"^\d+$"))
            .with_body(error_body("overloaded"), content_type=JSON)
        )
        sleeps = RecordedSleeps()
        result = await call(pact, "reserve_credit", o, sleeps)
        assert result.outcome is Outcome.UNKNOWN
        assert sleeps.delays  # retried: a POST with an Idempotency-Key may be
        assert set(sleeps.delays) == {1.0}


@pytest.mark.behaviour("contract.orchestrator-users")
class TestConfirmCredit:
    async def test_confirms(self, new_pact: NewPact) -> None:
        """200 with the reservation confirmed."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(7)
        (
            pact.upon_receiving("a request to confirm a reservation")
            .given("a user with a reservation", with_reservation(o, "reserved"))
            .with_request("POST", path("/users/{user}/reservations/{key}/confirm", confirm_path(o)))
            .will_respond_with(200)
            .with_body(reservation(o, "confirmed"), content_type=JSON)
        )
        assert (await call(pact, "confirm_credit", o)).outcome is Outcome.OK

    async def test_confirming_again_is_a_success(self, new_pact: NewPact) -> None:
        """A re-driven saga confirms again: 200, still confirmed."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(8)
        (
            pact.upon_receiving("a repeated request to confirm a reservation")
            .given("a user with a reservation", with_reservation(o, "confirmed"))
            .with_request("POST", path("/users/{user}/reservations/{key}/confirm", confirm_path(o)))
            .will_respond_with(200)
            .with_body(reservation(o, "confirmed"), content_type=JSON)
        )
        assert (await call(pact, "confirm_credit", o)).outcome is Outcome.OK


@pytest.mark.behaviour("contract.orchestrator-users", "saga.compensation")
class TestReleaseCredit:
    async def test_releases(self, new_pact: NewPact) -> None:
        """The compensation: 200 with the reservation released."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(9)
        (
            pact.upon_receiving("a request to release a reservation")
            .given("a user with a reservation", with_reservation(o, "reserved"))
            .with_request("POST", path("/users/{user}/reservations/{key}/release", release_path(o)))
            .will_respond_with(200)
            .with_body(reservation(o, "released"), content_type=JSON)
        )
        assert (await call(pact, "release_credit", o)).outcome is Outcome.OK

    async def test_releasing_again_is_a_success(self, new_pact: NewPact) -> None:
        """A repeated compensation: 200, still released."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(10)
        (
            pact.upon_receiving("a repeated request to release a reservation")
            .given("a user with a reservation", with_reservation(o, "released"))
            .with_request("POST", path("/users/{user}/reservations/{key}/release", release_path(o)))
            .will_respond_with(200)
            .with_body(reservation(o, "released"), content_type=JSON)
        )
        assert (await call(pact, "release_credit", o)).outcome is Outcome.OK

    async def test_unknown_user_has_nothing_to_release(self, new_pact: NewPact) -> None:
        """404 for an unknown user: nothing is held, so the compensation counts as done."""
        pact, o = new_pact(CONSUMER, PROVIDER), order(11)
        (
            pact.upon_receiving("a request to release credit of an unknown user")
            .given("no such user", {"user_id": o.user_id})
            .with_request("POST", path("/users/{user}/reservations/{key}/release", release_path(o)))
            .will_respond_with(404)
            .with_body(error_body("not_found"), content_type=JSON)
        )
        assert (await call(pact, "release_credit", o)).outcome is Outcome.OK


def confirm_path(o: Order) -> str:
    return f"/users/{o.user_id}/reservations/{o.reservation_id}/confirm"


def release_path(o: Order) -> str:
    return f"/users/{o.user_id}/reservations/{o.reservation_id}/release"
