"""The notifications API on a real process: dedupe by id, conflicts, lists per user, persistence, bad input.

``notifications_process`` is shared with the users outbox tests.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.stack import ServiceProcess

from ._support import notifications_process, wait_in_flight

JSON_HEADERS = {"Content-Type": "application/json"}
BIG = 70_000


def note(user_id: str = "alice", **fields: Any) -> dict[str, Any]:
    """A valid notification with a fresh id."""
    body = {"notification_id": f"n-{uuid.uuid4().hex}", "user_id": user_id, "type": "user.created",
            "message": "Welcome, Alice"}  # fmt: skip
    return {**body, **fields}


@pytest.fixture(scope="module")
def notifications(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("notifications")
    process = notifications_process(workdir, workdir / "notifications.db").start()
    yield process
    process.stop()


@pytest.fixture
async def http(notifications: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=notifications.url, timeout=10.0, trust_env=False) as client:
        yield client


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no sample {name}")


@pytest.mark.behaviour("notifications.deduplicated")
class TestAccept:
    """Idempotent by notification id: a redelivery is answered, never stored twice."""

    async def test_store_then_get(self, http: httpx.AsyncClient) -> None:
        body = note()
        response = await http.post("/notifications", json=body)
        assert response.status_code == 201, response.text
        view = response.json()
        assert view == {**body, "created_at": view["created_at"]}
        assert view["created_at"].endswith("+00:00")
        got = await http.get(f"/notifications/{body['notification_id']}")
        assert (got.status_code, got.json()) == (200, view)

    async def test_redelivery_is_deduplicated(self, http: httpx.AsyncClient) -> None:
        """Same id and content: 200 with the first record, one record, counted as deduplicated."""
        user = f"user-{uuid.uuid4().hex[:8]}"
        body = note(user)
        before = metric((await http.get("/metrics")).text, "notifications_deduplicated_total")
        first = await http.post("/notifications", json=body)
        again = [await http.post("/notifications", json=body) for _ in range(3)]
        assert first.status_code == 201
        assert [a.status_code for a in again] == [200, 200, 200]
        assert all(a.json() == first.json() for a in again)
        listing = (await http.get("/notifications", params={"user_id": user})).json()["notifications"]
        assert listing == [first.json()]
        after = metric((await http.get("/metrics")).text, "notifications_deduplicated_total")
        assert after - before == 3

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param({"message": "Welcome, Bob"}, id="other-message"),
            pytest.param({"user_id": "bob"}, id="other-user"),
            pytest.param({"type": "order.completed"}, id="other-type"),
        ],
    )
    async def test_same_id_other_content_is_409(
        self, http: httpx.AsyncClient, change: dict[str, str]
    ) -> None:
        """The first record stays as it was."""
        body = note()
        first = await http.post("/notifications", json=body)
        conflict = await http.post("/notifications", json={**body, **change})
        assert conflict.status_code == 409
        assert conflict.json()["error"] == "idempotency_conflict"
        assert (await http.get(f"/notifications/{body['notification_id']}")).json() == first.json()

    async def test_unknown_id_is_404(self, http: httpx.AsyncClient) -> None:
        response = await http.get(f"/notifications/n-{uuid.uuid4().hex}")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


class TestList:
    async def test_lists_only_that_users_notifications_oldest_first(self, http: httpx.AsyncClient) -> None:
        user, other = f"user-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
        mine = [note(user, message=f"m{n}") for n in range(3)]
        for body in [mine[0], note(other), mine[1], mine[2]]:
            assert (await http.post("/notifications", json=body)).status_code == 201
        listing = (await http.get("/notifications", params={"user_id": user})).json()["notifications"]
        assert [n["notification_id"] for n in listing] == [b["notification_id"] for b in mine]

    async def test_a_user_without_notifications_has_an_empty_list(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/notifications", params={"user_id": "nobody-here"})
        assert (response.status_code, response.json()) == (200, {"notifications": []})


def bad(case_id: str, status: int, error: str, hint: str, **request: Any) -> pytest.ParameterSet:
    request.setdefault("method", "POST")
    request.setdefault("url", "/notifications")
    return pytest.param(request, status, error, hint, id=case_id)


def bad_field(case_id: str, hint: str, **fields: Any) -> pytest.ParameterSet:
    body = {k: v for k, v in note(**fields).items() if v is not None}
    return bad(case_id, 422, "validation_error", hint, json=body)


BAD_INPUT = [
    bad("malformed-json", 400, "malformed_json", "not valid JSON", content=b'{"user_id": ',
        headers=JSON_HEADERS),
    bad("json-array", 422, "validation_error", "JSON object", json=[note()]),
    bad("wrong-content-type", 415, "unsupported_media_type", "application/json", content=json.dumps(note()),
        headers={"Content-Type": "text/plain"}),
    bad("oversized-body", 413, "body_too_large", "limit", content=b"x" * BIG, headers=JSON_HEADERS),
    bad_field("unknown-field", "priority", priority="high"),
    bad_field("missing-user-id", "user_id", user_id=None),
    bad_field("missing-message", "message", message=None),
    bad_field("empty-notification-id", "notification_id", notification_id=""),
    bad_field("over-long-notification-id", "notification_id", notification_id="n" * 129),
    bad_field("notification-id-with-slash", "notification_id", notification_id="a/b"),
    bad_field("bad-user-id", "user_id", user_id="a b"),
    bad_field("over-long-user-id", "user_id", user_id="u" * 64),
    bad_field("empty-type", "type", type=""),
    bad_field("over-long-type", "type", type="t" * 64),
    bad_field("over-long-message", "message", message="m" * 2001),
    bad_field("message-as-number", "message", message=5),
    bad("list-without-user-id", 422, "validation_error", "user_id", method="GET"),
    bad("list-with-bad-user-id", 422, "validation_error", "user_id", method="GET",
        url="/notifications?user_id=a%20b"),
    bad("over-long-id-in-path", 422, "validation_error", "notification_id", method="GET",
        url=f"/notifications/{'n' * 129}"),
    bad("wrong-method", 405, "method_not_allowed", "DELETE", method="DELETE", url="/notifications/n-1"),
]  # fmt: skip


@pytest.mark.behaviour("services.bad_input")
@pytest.mark.parametrize(("request_kwargs", "status", "error", "hint"), BAD_INPUT)
async def test_bad_input_is_a_clear_4xx(
    http: httpx.AsyncClient, request_kwargs: dict[str, Any], status: int, error: str, hint: str
) -> None:
    response = await http.request(**request_kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert hint.lower() in response.json()["message"].lower()


@pytest.mark.behaviour("services.persistence", "notifications.deduplicated")
def test_notifications_survive_a_restart(tmp_path: Path) -> None:
    """A new process on the same file has the records, and still deduplicates against them."""
    database = tmp_path / "notifications.db"
    body = note("kept")
    with notifications_process(tmp_path, database) as first, httpx.Client(base_url=first.url) as http:
        stored = http.post("/notifications", json=body).json()
    with notifications_process(tmp_path, database) as second, httpx.Client(base_url=second.url) as http:
        listing = http.get("/notifications", params={"user_id": "kept"}).json()["notifications"]
        redelivery = http.post("/notifications", json=body)
    assert listing == [stored]
    assert (redelivery.status_code, redelivery.json()) == (200, stored)


@pytest.mark.behaviour("services.load_shedding")
async def test_sheds_load_while_a_request_holds_its_only_slot(tmp_path: Path) -> None:
    """max_in_flight=1: a store waiting for the database lock holds the slot; a GET meanwhile gets 503."""
    database = tmp_path / "notifications.db"
    with notifications_process(tmp_path, database, max_in_flight=1) as process:
        async with httpx.AsyncClient(base_url=process.url, timeout=10.0) as http:
            with closing(sqlite3.connect(database, isolation_level=None)) as lock:
                lock.execute("BEGIN IMMEDIATE")  # every write now waits (up to its busy timeout)
                try:
                    slow = asyncio.create_task(http.post("/notifications", json=note("slow")))
                    await wait_in_flight(http, 1)
                    shed = await http.get("/notifications", params={"user_id": "slow"})
                finally:
                    lock.execute("ROLLBACK")
            stored = await slow
    assert (shed.status_code, shed.headers["retry-after"], shed.json()["error"]) == (503, "1", "overloaded")
    assert stored.status_code == 201, stored.text
