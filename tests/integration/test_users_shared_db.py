"""Two users processes on one database file (the stateless app tier): races resolve in the database.

Identical reserves sent at the same moment to both processes make one reservation; concurrent demands
on one user never reserve more than its credit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing

import httpx
import pytest

from harness.stack import ServiceProcess

from ._support import balance, create_user, reserve, unique, users_process

ROUNDS = 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    workdir = tmp_path_factory.mktemp("users-shared")
    database = workdir / "users.db"
    first = users_process(workdir, database, instance_id="users-1").spawn()
    second = users_process(workdir, database, instance_id="users-2").spawn()
    try:
        yield first.wait_ready(), second.wait_ready()
    finally:
        first.stop()
        second.stop()


@pytest.fixture
async def clients(
    pair: tuple[ServiceProcess, ServiceProcess],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=pair[0].url, timeout=10.0, trust_env=False) as one,
        httpx.AsyncClient(base_url=pair[1].url, timeout=10.0, trust_env=False) as two,
    ):
        yield one, two


@pytest.mark.behaviour("users.credit_rules")
async def test_a_user_created_on_one_instance_is_seen_by_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, two = clients
    user = await create_user(one, credit=5)
    assert (await two.get(f"/users/{user['id']}")).json() == user
    duplicate = await two.post("/users", json={"id": user["id"], "name": "X", "email": "x@example.org"})
    assert duplicate.status_code == 409


@pytest.mark.behaviour("users.idempotent_reservations")
async def test_identical_reserves_racing_on_two_instances_make_one_reservation(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Round after round, the same reserve hits both processes at once: one 201 and one 200, same view."""
    one, two = clients
    user = await create_user(one, credit=ROUNDS * 10)
    for _ in range(ROUNDS):
        rid = unique("r")
        answers = await asyncio.gather(reserve(one, user["id"], rid, 10), reserve(two, user["id"], rid, 10))
        assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
        assert answers[0].json() == answers[1].json()
    listing = (await two.get(f"/users/{user['id']}/reservations")).json()["reservations"]
    assert len(listing) == ROUNDS
    assert await balance(one, user["id"]) == (ROUNDS * 10, 0)


@pytest.mark.behaviour("users.credit_rules")
async def test_concurrent_demands_never_overbook_the_credit(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """40 different reserves of 10 against a credit of 100, spread over both: exactly 10 succeed."""
    one, two = clients
    user = await create_user(one, credit=100)
    answers = await asyncio.gather(
        *(reserve((one, two)[n % 2], user["id"], unique("r"), 10) for n in range(40))
    )
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 10
    assert statuses.count(409) == 30
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"insufficient_credit"}
    assert await balance(two, user["id"]) == (100, 0)


@pytest.mark.behaviour("services.persistence")
def test_the_file_is_in_wal_mode(pair: tuple[ServiceProcess, ServiceProcess]) -> None:
    """WAL lets readers on one process go on while the other writes."""
    with closing(sqlite3.connect(pair[0].workdir / "users.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
