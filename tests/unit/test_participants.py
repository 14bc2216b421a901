"""The orchestrator's participant calls against respx: what counts as done, rejected or unknown."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.events import EventLog
from harness.resilience import RetryPolicy
from reference_services.orchestrator._log import Order, SagaState
from reference_services.orchestrator._participants import HttpParticipants
from reference_services.orchestrator._saga import Outcome

USERS = Instance("users-1", "users", "127.0.0.1", 9101)
NOTIFICATIONS = Instance("notifications-1", "notifications", "127.0.0.1", 9201)
ORDER = Order("o1", "k1", "alice", 10, SagaState.NOTIFYING, None, "t", "t")
NOTE_URL = f"{NOTIFICATIONS.base_url}/notifications"


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
        ("status", "outcome"),
        [
            pytest.param(201, Outcome.OK, id="stored"),
            pytest.param(200, Outcome.OK, id="deduplicated"),
            pytest.param(409, Outcome.REJECTED, id="conflicting-content"),
            pytest.param(503, Outcome.UNKNOWN, id="shedding"),
        ],
    )
    async def test_notify_outcomes(
        self, participants: HttpParticipants, mock: respx.MockRouter, status: int, outcome: Outcome
    ) -> None:
        """Only the answer to the POST counts; no lookup, since a redelivery is deduplicated by id."""
        mock.post(NOTE_URL).mock(return_value=httpx.Response(status, json={}))
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
        ("status", "outcome"),
        [
            pytest.param(201, Outcome.OK, id="reserved"),
            pytest.param(200, Outcome.OK, id="replayed"),
            pytest.param(409, Outcome.REJECTED, id="insufficient"),
            pytest.param(404, Outcome.REJECTED, id="unknown-user"),
            pytest.param(503, Outcome.UNKNOWN, id="shedding"),
        ],
    )
    async def test_reserve_outcomes(
        self, participants: HttpParticipants, mock: respx.MockRouter, status: int, outcome: Outcome
    ) -> None:
        """Only a clear business answer is a rejection; a 5xx leaves the outcome unknown."""
        mock.post(f"{USERS.base_url}/users/alice/reservations").mock(
            return_value=httpx.Response(status, json={})
        )
        assert (await participants.reserve_credit(ORDER)).outcome is outcome

    async def test_release_for_an_unknown_user_is_done(
        self, participants: HttpParticipants, mock: respx.MockRouter
    ) -> None:
        """Nothing to release for a user that does not exist: the compensation succeeds."""
        mock.post(f"{USERS.base_url}/users/alice/reservations/{ORDER.reservation_id}/release").mock(
            return_value=httpx.Response(404, json={"error": "not_found"})
        )
        assert (await participants.release_credit(ORDER)).outcome is Outcome.OK
