"""The orchestrator's participant calls against respx: what counts as done, rejected or unknown.

Only a refusal the contract defines (its JSON error body) is a clear no; every other answer without a
success is a failure to deliver."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.events import EventLog
from harness.resilience import RetryPolicy
from reference_services.orchestrator._log import Order, SagaState
from reference_services.orchestrator._participants import HttpParticipants, step_result
from reference_services.orchestrator._saga import Outcome

USERS = Instance("users-1", "users", "127.0.0.1", 9101)
NOTIFICATIONS = Instance("notifications-1", "notifications", "127.0.0.1", 9201)
ORDER = Order("o1", "k1", "alice", 10, SagaState.NOTIFYING, None, "t", "t")
NOTE_URL = f"{NOTIFICATIONS.base_url}/notifications"
CONFLICT = {"error": "idempotency_conflict", "message": "Notification n1 exists with other content."}
INSUFFICIENT = {"error": "insufficient_credit", "message": "Only 5 available.", "available": 5}
NOT_FOUND = {"error": "not_found", "message": "User 'alice' does not exist."}
UVICORN_400 = "Invalid HTTP request received."  # what the server's HTTP layer answers to garbled bytes


async def no_sleep(_seconds: float) -> None:
    return None


def client(service: str) -> ServiceClient:
    config = ServiceClientConfig(retry=RetryPolicy(max_attempts=2), retry_budget_min_per_second=100.0)
    source = StaticInstances([USERS, NOTIFICATIONS])
    return ServiceClient(service, source, config=config, sleep=no_sleep, events=EventLog("test"))


@pytest.fixture
def participants() -> HttpParticipants:
    return HttpParticipants(client("users"), client("notifications"))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.mark.behaviour("saga.pivot_rule")
class TestNotify:
    @pytest.mark.parametrize(
        ("status", "body", "outcome"),
        [
            pytest.param(201, {}, Outcome.OK, id="stored"),
            pytest.param(200, {}, Outcome.OK, id="deduplicated"),
            pytest.param(409, CONFLICT, Outcome.REJECTED, id="conflicting-content"),
            pytest.param(503, {"error": "overloaded", "message": "Later."}, Outcome.UNKNOWN, id="shedding"),
        ],
    )
    async def test_notify_outcomes(
        self,
        participants: HttpParticipants,
        mock: respx.MockRouter,
        status: int,
        body: dict[str, str],
        outcome: Outcome,
    ) -> None:
        """Only the answer to the POST counts; no lookup, since a redelivery is deduplicated by id."""
        mock.post(NOTE_URL).mock(return_value=httpx.Response(status, json=body))
        result = await participants.notify(ORDER)
        assert (result.outcome, result.status) == (outcome, status)
        assert all(call.request.method == "POST" for call in mock.calls)

    async def test_notify_carries_its_idempotency_key(
        self, participants: HttpParticipants, mock: respx.MockRouter
    ) -> None:
        """The POST is keyed by the notification id, so a retry can never notify twice."""
        route = mock.post(NOTE_URL).mock(return_value=httpx.Response(201, json={}))
        assert (await participants.notify(ORDER)).outcome is Outcome.OK
        sent = route.calls.last.request
        assert sent.headers["Idempotency-Key"] == ORDER.notification_id


@pytest.mark.behaviour("saga.compensation")
class TestCredit:
    @pytest.mark.parametrize(
        ("status", "body", "outcome"),
        [
            pytest.param(201, {}, Outcome.OK, id="reserved"),
            pytest.param(200, {}, Outcome.OK, id="replayed"),
            pytest.param(409, INSUFFICIENT, Outcome.REJECTED, id="insufficient"),
            pytest.param(404, NOT_FOUND, Outcome.REJECTED, id="unknown-user"),
            pytest.param(503, {}, Outcome.UNKNOWN, id="shedding"),
        ],
    )
    async def test_reserve_outcomes(
        self,
        participants: HttpParticipants,
        mock: respx.MockRouter,
        status: int,
        body: dict[str, object],
        outcome: Outcome,
    ) -> None:
        """Only a refusal with the contract's body is a rejection; a 5xx leaves the outcome unknown."""
        mock.post(f"{USERS.base_url}/users/alice/reservations").mock(
            return_value=httpx.Response(status, json=body)
        )
        assert (await participants.reserve_credit(ORDER)).outcome is outcome

    async def test_release_for_an_unknown_user_is_done(
        self, participants: HttpParticipants, mock: respx.MockRouter
    ) -> None:
        """Nothing to release for a user that does not exist: the compensation succeeds."""
        mock.post(f"{USERS.base_url}/users/alice/reservations/{ORDER.reservation_id}/release").mock(
            return_value=httpx.Response(404, json=NOT_FOUND)
        )
        assert (await participants.release_credit(ORDER)).outcome is Outcome.OK

    async def test_a_404_without_the_contract_body_is_not_a_missing_user(
        self, participants: HttpParticipants, mock: respx.MockRouter
    ) -> None:
        """A plain 404 (from something that is not the users service) says nothing: release again later."""
        mock.post(f"{USERS.base_url}/users/alice/reservations/{ORDER.reservation_id}/release").mock(
            return_value=httpx.Response(404, text="Not Found")
        )
        assert (await participants.release_credit(ORDER)).outcome is Outcome.UNKNOWN


def answer(status: int, content: bytes, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type is not None else {}
    return httpx.Response(status, content=content, headers=headers)


@pytest.mark.behaviour("saga.bounded_retries")
class TestClassification:
    """A clear no only with the contract's error body; everything else without a success is UNKNOWN."""

    @pytest.mark.parametrize(
        "response",
        [
            pytest.param(answer(409, b'{"error":"idempotency_conflict","message":"Exists."}'),
                         id="409-error-body"),
            pytest.param(answer(422, b'{"error":"validation_error","message":"Bad.","details":[]}'),
                         id="422-with-details"),
            pytest.param(answer(409, b'{"error":"insufficient_credit","message":"No.","available":5}'),
                         id="409-with-extra-facts"),
            pytest.param(answer(400, b'{"error":"malformed_json","message":"Not JSON."}',
                                "application/json; charset=utf-8"), id="400-error-body-with-charset"),
            pytest.param(answer(404, b'{"error":"not_found","message":"No user."}'), id="404-error-body"),
        ],
    )  # fmt: skip
    def test_the_documented_error_body_is_a_refusal(self, response: httpx.Response) -> None:
        """A 400, 404, 409 or 422 with ``{"error": code, "message": ...}`` is REJECTED."""
        assert step_result(response).outcome is Outcome.REJECTED

    @pytest.mark.parametrize(
        "response",
        [
            pytest.param(answer(400, UVICORN_400.encode(), "text/plain; charset=utf-8"), id="uvicorn-400"),
            pytest.param(answer(400, UVICORN_400.encode(), None), id="400-no-content-type"),
            pytest.param(answer(409, b'{"error":"conflict","mess'), id="409-truncated-json"),
            pytest.param(answer(409, b"\xff\xfe{"), id="409-not-utf8"),
            pytest.param(answer(409, b'["error", "message"]'), id="409-json-not-an-object"),
            pytest.param(answer(409, b'{"error":"conflict"}'), id="409-no-message"),
            pytest.param(answer(409, b'{"error":"Not A Code","message":"x"}'), id="409-error-not-a-code"),
            pytest.param(answer(409, b'{"detail":"conflict"}'), id="409-other-json-shape"),
            pytest.param(answer(409, b'{"error":"conflict","message":"x"}', "text/html"), id="409-as-html"),
            pytest.param(answer(403, b'{"error":"forbidden","message":"x"}'), id="403-not-a-refusal-status"),
            pytest.param(answer(500, b'{"error":"internal_error","message":"x"}'), id="500-error-body"),
            pytest.param(answer(503, b'{"error":"storage_busy","message":"x"}'), id="503-error-body"),
            pytest.param(answer(502, b"Bad Gateway", "text/plain"), id="502-plain"),
        ],
    )  # fmt: skip
    def test_anything_else_is_a_failure_to_deliver(self, response: httpx.Response) -> None:
        """A protocol-level 4xx, a cut or unparseable body, a 5xx: UNKNOWN, with the status kept."""
        result = step_result(response)
        assert (result.outcome, result.status) == (Outcome.UNKNOWN, response.status_code)
        assert "not delivered" in result.detail

    async def test_the_uvicorn_400_through_the_client_is_unknown(
        self, participants: HttpParticipants, mock: respx.MockRouter
    ) -> None:
        """The answer a cut request gets from the server's HTTP layer: retried, never a clear no."""
        mock.post(NOTE_URL).mock(return_value=answer(400, UVICORN_400.encode(), "text/plain; charset=utf-8"))
        result = await participants.notify(ORDER)
        assert (result.outcome, result.status) == (Outcome.UNKNOWN, 400)
        assert UVICORN_400 in result.detail

    @pytest.mark.parametrize(
        "error",
        [
            pytest.param(httpx.ConnectError("refused"), id="connect-error"),
            pytest.param(httpx.ReadError("connection reset by peer"), id="reset"),
            pytest.param(httpx.RemoteProtocolError("peer closed connection without sending complete message "
                                                   "body"), id="cut-answer"),
            pytest.param(httpx.ReadTimeout("timed out"), id="timeout"),
        ],
    )  # fmt: skip
    async def test_a_transport_error_is_unknown(
        self, participants: HttpParticipants, mock: respx.MockRouter, error: httpx.HTTPError
    ) -> None:
        """No answer at all (after the client's own retries): UNKNOWN, no status."""
        mock.post(NOTE_URL).mock(side_effect=error)
        result = await participants.notify(ORDER)
        assert (result.outcome, result.status) == (Outcome.UNKNOWN, None)
