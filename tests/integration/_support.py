"""Helpers the integration tests share: start service processes, poll with a deadline, common calls."""

from __future__ import annotations

import asyncio
import contextlib
import socketserver
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from harness.stack import ProcessSpec, ServiceProcess, SettingValue
from tests._children import child_env

T = TypeVar("T")


def sample(text: str, name: str) -> float | None:
    """The value of an unlabelled sample in Prometheus text, if present."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


async def balance(http: httpx.AsyncClient, user_id: str) -> tuple[int, int]:
    """(reserved, available) of a user."""
    response = await http.get(f"/users/{user_id}")
    assert response.status_code == 200, response.text
    return response.json()["reserved"], response.json()["available"]


async def create_user(http: httpx.AsyncClient, credit: int = 100, **fields: Any) -> dict[str, Any]:
    user_id = fields.pop("id", unique())
    body = {"id": user_id, "name": f"Name of {user_id}", "email": f"{user_id}@example.org", "credit": credit}
    response = await http.post("/users", json={**body, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.02
) -> T:
    """Poll ``probe`` until it returns something other than None; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within:g}s")
        await asyncio.sleep(every)


def notifications_process(
    workdir: Path,
    database: Path,
    *,
    instance_id: str = "notifications-1",
    registry: str | None = None,
    max_in_flight: int | None = None,
) -> ServiceProcess:
    """A notifications instance (not started yet); events go to ``<workdir>/<instance_id>.jsonl``."""
    return instance_process("notifications", workdir, database, instance_id=instance_id, registry=registry,
                            max_in_flight=max_in_flight)  # fmt: skip


def instance_process(
    kind: str, workdir: Path, database: Path, *, instance_id: str, registry: str | None,
    **settings: SettingValue,
) -> ServiceProcess:  # fmt: skip
    """A reference service instance with its database and event log; with a registry, quick heartbeats."""
    heartbeat: dict[str, SettingValue] = {"heartbeat_interval": 0.2, "ttl": 1.0} if registry else {}
    spec = ProcessSpec(instance_id, kind, {
        "instance_id": instance_id, "database": database, "event_log": workdir / f"{instance_id}.jsonl",
        "registry": registry, **heartbeat, **settings,
    }, env=child_env())  # fmt: skip
    return ServiceProcess(spec, workdir=workdir)


async def reserve(
    http: httpx.AsyncClient, user_id: str, reservation_id: str, amount: int, order_id: str | None = None
) -> httpx.Response:
    body = {"reservation_id": reservation_id, "amount": amount, "order_id": order_id}
    return await http.post(f"/users/{user_id}/reservations", json=body)


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def users_process(
    workdir: Path,
    database: Path,
    *,
    instance_id: str = "users-1",
    registry: str | None = None,
    outbox_interval: float = 0.05,
    max_in_flight: int | None = None,
) -> ServiceProcess:
    """A users instance (not started yet); events go to ``<workdir>/<instance_id>.jsonl``."""
    return instance_process("users", workdir, database, instance_id=instance_id, registry=registry,
                            outbox_interval=outbox_interval, max_in_flight=max_in_flight)  # fmt: skip


async def wait_in_flight(http: httpx.AsyncClient, expected: float) -> None:
    """Poll ``/metrics`` (never shed) until the in-flight gauge shows ``expected``."""

    async def probe() -> float | None:
        value = sample((await http.get("/metrics")).text, "http_requests_in_flight")
        return value if value == expected else None

    await eventually(probe, within=5.0, what=f"{expected:g} requests in flight")


@contextlib.contextmanager
def tcp_server(handler: type[socketserver.BaseRequestHandler]) -> Iterator[str]:
    """A threaded TCP server on a loopback port from the OS, serving ``handler``; yields ``host:port`` and
    stops (every thread joined) on exit."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
