"""The users API against a real users process: users, credit reservations and their rules, persistence.

``start_users`` is shared with the other users test modules (outbox, shared database, load shedding).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from harness.events import read_events
from harness.stack import ServiceProcess

from ._support import balance, create_user, reserve, unique, users_process

T = TypeVar("T")


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json", response.text
    error: str = response.json()["error"]
    return error


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One users process for the module (no registry: the outbox simply waits); tests use unique ids."""
    workdir = tmp_path_factory.mktemp("users")
    process = users_process(workdir, workdir / "users.db").start()
    yield process
    process.stop()


@pytest.fixture
async def http(users: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=users.url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.mark.behaviour("users.credit_rules")
class TestUsers:
    """Create, read, 404 and 409."""

    async def test_create_then_get(self, http: httpx.AsyncClient) -> None:
        """201 with the user view; GET answers the same view; created_at is ISO 8601 in UTC."""
        created = await create_user(http, credit=250, id="ada-1", name="Ada", email="ada@example.org")
        assert created == {
            "id": "ada-1",
            "name": "Ada",
            "email": "ada@example.org",
            "credit": 250,
            "reserved": 0,
            "available": 250,
            "created_at": created["created_at"],
        }
        assert created["created_at"].endswith("+00:00")
        got = await http.get("/users/ada-1")
        assert got.status_code == 200
        assert got.json() == created

    async def test_credit_defaults_to_zero(self, http: httpx.AsyncClient) -> None:
        user_id = unique()
        response = await http.post("/users", json={"id": user_id, "name": "N", "email": "n@example.org"})
        assert response.status_code == 201, response.text
        assert (response.json()["credit"], response.json()["available"]) == (0, 0)

    async def test_unknown_user_is_404(self, http: httpx.AsyncClient) -> None:
        response = await http.get(f"/users/{unique()}")
        assert response.status_code == 404
        assert error_of(response) == "not_found"

    async def test_duplicate_id_is_409_and_keeps_the_first(self, http: httpx.AsyncClient) -> None:
        """A second create with the same id changes nothing, whatever its other fields."""
        first = await create_user(http, credit=10)
        again = await http.post(
            "/users", json={"id": first["id"], "name": "Other", "email": "other@example.org", "credit": 99}
        )
        assert again.status_code == 409
        assert error_of(again) == "conflict"
        assert (await http.get(f"/users/{first['id']}")).json() == first


@pytest.mark.behaviour("users.credit_rules")
class TestReservations:
    """Reserve with an idempotency key, confirm, release, and the rules between them."""

    async def test_reserve_holds_credit(self, http: httpx.AsyncClient) -> None:
        """201 with the reservation; reserved goes up and available down by the amount."""
        user = await create_user(http, credit=100)
        response = await reserve(http, user["id"], "r-hold", 30, order_id="o-1")
        assert response.status_code == 201, response.text
        view = response.json()
        assert view == {
            "reservation_id": "r-hold",
            "user_id": user["id"],
            "amount": 30,
            "status": "reserved",
            "order_id": "o-1",
            "created_at": view["created_at"],
        }
        assert await balance(http, user["id"]) == (30, 70)

    @pytest.mark.behaviour("users.idempotent_reservations")
    async def test_replay_returns_the_first_reservation(self, http: httpx.AsyncClient) -> None:
        """Same id, user and amount: 200 with the stored view, and still one reservation."""
        user = await create_user(http, credit=100)
        rid = unique("r")
        first = await reserve(http, user["id"], rid, 40, order_id="o-1")
        replays = [await reserve(http, user["id"], rid, 40, order_id="o-1") for _ in range(3)]
        assert first.status_code == 201
        assert [r.status_code for r in replays] == [200, 200, 200]
        assert all(r.json() == first.json() for r in replays)
        listing = (await http.get(f"/users/{user['id']}/reservations")).json()["reservations"]
        assert [r["reservation_id"] for r in listing] == [rid]
        assert await balance(http, user["id"]) == (40, 60)

    @pytest.mark.behaviour("users.idempotent_reservations")
    async def test_replay_succeeds_when_the_credit_is_used_up(self, http: httpx.AsyncClient) -> None:
        """A retry of a reservation that took the last credit is a replay, not a new demand."""
        user = await create_user(http, credit=50)
        rid = unique("r")
        assert (await reserve(http, user["id"], rid, 50)).status_code == 201
        assert (await reserve(http, user["id"], rid, 50)).status_code == 200

    @pytest.mark.behaviour("users.idempotent_reservations")
    @pytest.mark.parametrize(
        ("other_user", "amount"),
        [pytest.param(False, 41, id="other-amount"), pytest.param(True, 40, id="other-user")],
    )
    async def test_reusing_an_id_for_something_else_is_409(
        self, http: httpx.AsyncClient, other_user: bool, amount: int
    ) -> None:
        """The id is bound to its user and amount; the original reservation is untouched."""
        user = await create_user(http, credit=100)
        rid = unique("r")
        assert (await reserve(http, user["id"], rid, 40)).status_code == 201
        target = (await create_user(http, credit=100))["id"] if other_user else user["id"]
        response = await reserve(http, target, rid, amount)
        assert response.status_code == 409
        assert error_of(response) == "idempotency_conflict"
        assert await balance(http, user["id"]) == (40, 60)

    async def test_insufficient_credit_is_409_with_what_is_available(self, http: httpx.AsyncClient) -> None:
        """Nothing is reserved, and the answer says how much could be."""
        user = await create_user(http, credit=100)
        assert (await reserve(http, user["id"], unique("r"), 70)).status_code == 201
        response = await reserve(http, user["id"], unique("r"), 31)
        assert response.status_code == 409
        assert response.json()["error"] == "insufficient_credit"
        assert response.json()["available"] == 30
        assert "30" in response.json()["message"]
        assert await balance(http, user["id"]) == (70, 30)
        assert (await reserve(http, user["id"], unique("r"), 30)).status_code == 201

    async def test_unknown_user_or_reservation_is_404(self, http: httpx.AsyncClient) -> None:
        user = await create_user(http)
        ghost = unique()
        responses = [
            await reserve(http, ghost, unique("r"), 1),
            await http.post(f"/users/{ghost}/reservations/{unique('r')}/release"),
            await http.post(f"/users/{ghost}/reservations/{unique('r')}/confirm"),
            await http.post(f"/users/{user['id']}/reservations/{unique('r')}/confirm"),
            await http.get(f"/users/{ghost}/reservations"),
        ]
        assert [(r.status_code, error_of(r)) for r in responses] == [(404, "not_found")] * 5

    async def test_confirm_is_idempotent_and_keeps_the_credit_reserved(self, http: httpx.AsyncClient) -> None:
        user = await create_user(http, credit=100)
        rid = unique("r")
        await reserve(http, user["id"], rid, 25)
        answers = [await http.post(f"/users/{user['id']}/reservations/{rid}/confirm") for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.json()["status"] for a in answers] == ["confirmed", "confirmed"]
        assert await balance(http, user["id"]) == (25, 75)
        replay = await reserve(http, user["id"], rid, 25)
        assert (replay.status_code, replay.json()["status"]) == (200, "confirmed")

    async def test_release_is_idempotent_and_frees_the_credit(self, http: httpx.AsyncClient) -> None:
        user = await create_user(http, credit=100)
        rid = unique("r")
        await reserve(http, user["id"], rid, 25)
        answers = [await http.post(f"/users/{user['id']}/reservations/{rid}/release") for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.json()["status"] for a in answers] == ["released", "released"]
        assert await balance(http, user["id"]) == (0, 100)

    async def test_a_released_reservation_cannot_be_confirmed_or_reserved_again(
        self, http: httpx.AsyncClient
    ) -> None:
        user = await create_user(http, credit=100)
        rid = unique("r")
        await reserve(http, user["id"], rid, 25)
        await http.post(f"/users/{user['id']}/reservations/{rid}/release")
        confirm = await http.post(f"/users/{user['id']}/reservations/{rid}/confirm")
        again = await reserve(http, user["id"], rid, 25)
        assert (confirm.status_code, error_of(confirm)) == (409, "invalid_state")
        assert (again.status_code, error_of(again)) == (409, "reservation_released")
        assert await balance(http, user["id"]) == (0, 100)

    async def test_a_confirmed_reservation_cannot_be_released(self, http: httpx.AsyncClient) -> None:
        user = await create_user(http, credit=100)
        rid = unique("r")
        await reserve(http, user["id"], rid, 25)
        await http.post(f"/users/{user['id']}/reservations/{rid}/confirm")
        release = await http.post(f"/users/{user['id']}/reservations/{rid}/release")
        assert (release.status_code, error_of(release)) == (409, "invalid_state")
        assert await balance(http, user["id"]) == (25, 75)

    @pytest.mark.behaviour("users.idempotent_reservations")
    async def test_release_before_reserve_leaves_a_tombstone(self, http: httpx.AsyncClient) -> None:
        """A compensation overtaking its reserve: 200, then the late reserve is refused, holding nothing."""
        user = await create_user(http, credit=100)
        rid = unique("r")
        release = await http.post(f"/users/{user['id']}/reservations/{rid}/release")
        assert release.status_code == 200, release.text
        assert (release.json()["status"], release.json()["amount"]) == ("released", 0)
        late = await reserve(http, user["id"], rid, 60)
        assert (late.status_code, error_of(late)) == (409, "reservation_released")
        again = await http.post(f"/users/{user['id']}/reservations/{rid}/release")
        assert again.status_code == 200
        assert await balance(http, user["id"]) == (0, 100)

    async def test_ids_of_other_users_are_not_touched(self, http: httpx.AsyncClient) -> None:
        """Confirming or releasing another user's reservation id is refused and changes nothing."""
        owner, other = await create_user(http, credit=100), await create_user(http, credit=100)
        rid = unique("r")
        await reserve(http, owner["id"], rid, 10)
        for action in ("confirm", "release"):
            response = await http.post(f"/users/{other['id']}/reservations/{rid}/{action}")
            assert (response.status_code, error_of(response)) == (409, "idempotency_conflict")
        assert await balance(http, owner["id"]) == (10, 90)

    async def test_list_is_oldest_first_with_every_status(self, http: httpx.AsyncClient) -> None:
        user = await create_user(http, credit=100)
        ids = [unique("r") for _ in range(3)]
        for rid in ids:
            assert (await reserve(http, user["id"], rid, 10)).status_code == 201
        await http.post(f"/users/{user['id']}/reservations/{ids[0]}/confirm")
        await http.post(f"/users/{user['id']}/reservations/{ids[1]}/release")
        listing = (await http.get(f"/users/{user['id']}/reservations")).json()["reservations"]
        assert [(r["reservation_id"], r["status"]) for r in listing] == [
            (ids[0], "confirmed"),
            (ids[1], "released"),
            (ids[2], "reserved"),
        ]
        created = [r["created_at"] for r in listing]
        assert created == sorted(created)
        assert await balance(http, user["id"]) == (20, 80)


@pytest.mark.behaviour("services.operations")
class TestEvents:
    async def test_each_change_is_an_event(self, http: httpx.AsyncClient, users: ServiceProcess) -> None:
        """users.created/reserved/confirmed/released land in the JSON-lines log, replays marked as such."""
        user = await create_user(http, credit=100)
        first, second = unique("r"), unique("r")
        await reserve(http, user["id"], first, 10)
        await reserve(http, user["id"], first, 10)
        await http.post(f"/users/{user['id']}/reservations/{first}/confirm")
        await http.post(f"/users/{user['id']}/reservations/{second}/release")
        mine = [e for e in read_events(users.workdir / "users-1.jsonl") if e.get("user_id") == user["id"]]
        assert [(e["event"], e.get("replayed", e.get("changed", e.get("result")))) for e in mine] == [
            ("users.created", None),
            ("users.reserved", False),
            ("users.reserved", True),
            ("users.confirmed", True),
            ("users.released", "tombstone"),
        ]


@pytest.mark.behaviour("services.operations")
class TestOperations:
    async def test_ready_checks_the_database(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/ready")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "service": "users", "checks": {"database": True}}

    async def test_metrics_show_the_outbox(self, http: httpx.AsyncClient) -> None:
        """No registry, so nothing is delivered: events wait in the outbox, counted as pending."""
        await create_user(http)
        text = (await http.get("/metrics")).text
        assert "users_outbox_pending " in text
        assert "users_created_total " in text


@pytest.mark.behaviour("services.persistence")
def test_data_survives_a_restart(tmp_path: Path) -> None:
    """Stop the process, start a new one on the same file: users and reservations are there."""
    database = tmp_path / "users.db"
    body = {"id": "kept", "name": "Kept", "email": "kept@example.org", "credit": 90}
    reservation = {"reservation_id": "r1", "amount": 15}
    first = users_process(tmp_path, database).start()
    try:
        with httpx.Client(base_url=first.url, timeout=10.0) as http:
            assert http.post("/users", json=body).status_code == 201
            assert http.post("/users/kept/reservations", json=reservation).status_code == 201
            before = http.get("/users/kept").json()
    finally:
        first.stop()

    second = users_process(tmp_path, database).start()
    try:
        with httpx.Client(base_url=second.url, timeout=10.0) as http:
            assert http.get("/users/kept").json() == before
            replay = http.post("/users/kept/reservations", json=reservation)
            duplicate = http.post("/users", json=body)
    finally:
        second.stop()
    assert replay.status_code == 200
    assert duplicate.status_code == 409
