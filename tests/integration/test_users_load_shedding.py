"""Load shedding: past ``max_in_flight`` requests, new ones get 503 ``overloaded`` with ``Retry-After: 1``.

In-process, the shared middleware on a tiny app whose endpoint waits for an event; on a real users
process, a request made slow by holding the database's write lock from the test.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from reference_services.common import LoadShedMiddleware, create_service_app

from ._support import sample, users_process, wait_in_flight


@pytest.fixture
def gate() -> asyncio.Event:
    """Set it to let every waiting ``/slow`` request answer."""
    return asyncio.Event()


@pytest.fixture
def app(gate: asyncio.Event) -> FastAPI:
    metrics = CollectorRegistry()
    app = create_service_app("tiny", max_body_bytes=1024, metrics=metrics)

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await gate.wait()
        return {"ok": True}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_middleware(LoadShedMiddleware, max_in_flight=2, metrics=metrics)
    return app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tiny") as client:
        yield client


@pytest.mark.behaviour("services.load_shedding")
class TestMiddleware:
    """The shared middleware in-process: deterministic, no sockets."""

    async def test_sheds_beyond_the_limit_and_recovers(
        self, http: httpx.AsyncClient, gate: asyncio.Event
    ) -> None:
        """Two waiting requests fill the limit: the third gets 503 at once; after them, requests pass."""
        waiting = [asyncio.create_task(http.get("/slow")) for _ in range(2)]
        await wait_in_flight(http, 2)

        shed = await http.get("/slow")
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["error"] == "overloaded"
        assert (await http.get("/health")).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert sample(metrics, "http_requests_shed_total") == 1.0

        gate.set()
        assert [r.status_code for r in await asyncio.gather(*waiting)] == [200, 200]
        await wait_in_flight(http, 0)
        assert (await http.get("/slow")).status_code == 200

    async def test_a_failing_request_frees_its_slot(
        self, http: httpx.AsyncClient, gate: asyncio.Event
    ) -> None:
        """An endpoint that raises answers 500 and does not leak an in-flight slot."""
        for _ in range(3):
            assert (await http.get("/boom")).status_code == 500
        await wait_in_flight(http, 0)
        gate.set()
        assert (await http.get("/slow")).status_code == 200

    def test_limit_must_be_positive(self, app: FastAPI) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            LoadShedMiddleware(app, max_in_flight=0)


@pytest.mark.behaviour("services.load_shedding")
async def test_a_real_users_process_sheds_while_a_request_holds_its_only_slot(tmp_path: Path) -> None:
    """max_in_flight=1: a create waiting for the database lock holds the slot; a GET meanwhile gets 503."""
    database = tmp_path / "users.db"
    users = users_process(tmp_path, database, max_in_flight=1).start()
    try:
        async with httpx.AsyncClient(base_url=users.url, timeout=10.0) as http:
            with closing(sqlite3.connect(database, isolation_level=None)) as lock:
                lock.execute("BEGIN IMMEDIATE")  # every write now waits (up to its busy timeout)
                try:
                    body = {"id": "slow", "name": "Slow", "email": "slow@example.org"}
                    slow = asyncio.create_task(http.post("/users", json=body))
                    await wait_in_flight(http, 1)
                    shed = await http.get("/users/slow")
                    health = await http.get("/health")
                finally:
                    lock.execute("ROLLBACK")
            created = await slow
            after = await http.get("/users/slow")
    finally:
        users.stop()

    assert (shed.status_code, shed.headers["retry-after"], shed.json()["error"]) == (503, "1", "overloaded")
    assert health.status_code == 200
    assert created.status_code == 201, created.text
    assert after.status_code == 200
