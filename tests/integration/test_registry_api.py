"""The registry HTTP API against a real registry process: membership, TTL, health checks and watches."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from harness.discovery import Registration, RegistrationKeeper, RegistryClient, RegistryLookup
from harness.errors import RegistryRefused
from harness.events import read_events
from harness.stack import ProcessSpec, ServiceProcess
from tests._children import child_env

from ._support import eventually as poll
from .conftest import HealthTarget, RunningRegistry, start_registry

T = TypeVar("T")
JSON_HEADERS = {"Content-Type": "application/json"}


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against the same registry) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def body(service: str, port: int = 9000, **fields: Any) -> dict[str, Any]:
    return {"service": service, "address": "127.0.0.1", "port": port, **fields}


async def register(
    client: httpx.AsyncClient,
    instance_id: str,
    service: str,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    response = await client.put(f"/v1/instances/{instance_id}", json=body(service, **fields), headers=headers)
    assert response.status_code in (200, 201), response.text
    return response


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float, every: float = 0.02, what: str = "condition"
) -> tuple[T, float]:
    """Poll ``probe`` until it returns something other than None; returns it and the seconds it took."""
    started = time.monotonic()
    result = await poll(probe, within=within, what=what, every=every)
    return result, time.monotonic() - started


async def lookup(client: httpx.AsyncClient, service: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/services/{service}/instances", params=params)
    assert response.status_code == 200, response.text
    listing: dict[str, Any] = response.json()
    assert response.headers["X-Registry-Index"] == str(listing["index"])
    return listing


def ids(listing: dict[str, Any]) -> list[str]:
    return [i["instance_id"] for i in listing["instances"]]


async def instance_status(client: httpx.AsyncClient, instance_id: str) -> str | None:
    """The instance's status, or "gone" once the registry answers 404."""
    response = await client.get(f"/v1/instances/{instance_id}")
    if response.status_code == 404:
        return "gone"
    status: str = response.json()["status"]
    return status


def events_for(registry: RunningRegistry, instance_id: str) -> list[dict[str, Any]]:
    return [e for e in read_events(registry.event_log) if e.get("instance_id") == instance_id]


@pytest.mark.behaviour("registry.registration")
class TestRegistration:
    """Register, refresh, conflict and deregister."""

    async def test_register_is_201_then_refresh_is_200(self, client: httpx.AsyncClient) -> None:
        """Registration is idempotent per id: the first answer is 201, a repeat is 200 with the same view."""
        instance_id, service = unique("users"), unique("svc")
        fields: dict[str, Any] = {"health_url": None, "metadata": {"zone": "a"}, "weight": 5, "ttl": 30}

        first = await client.put(f"/v1/instances/{instance_id}", json=body(service, **fields))
        again = await client.put(f"/v1/instances/{instance_id}", json=body(service, **fields))

        assert (first.status_code, again.status_code) == (201, 200)
        view = again.json()
        assert {k: view[k] for k in ("instance_id", "service", "address", "port", "metadata", "weight")} == {
            "instance_id": instance_id,
            "service": service,
            "address": "127.0.0.1",
            "port": 9000,
            "metadata": {"zone": "a"},
            "weight": 5,
        }
        assert view["status"] == "passing"
        assert view["consecutive_failures"] == 0
        assert view["registered_at"] == first.json()["registered_at"]
        assert view["last_heartbeat_at"] >= view["registered_at"]
        assert 29.0 < view["expires_in"] <= 30.0
        assert ids(await lookup(client, service)) == [instance_id]

    async def test_defaults_apply(self, client: httpx.AsyncClient, registry: RunningRegistry) -> None:
        """Only service, address and port are required; the TTL defaults to the registry's."""
        response = await client.put(f"/v1/instances/{unique('d')}", json=body(unique("svc")))
        view = response.json()
        assert (view["health_url"], view["metadata"], view["weight"]) == (None, {}, 1)
        assert registry.ttl - 0.5 < view["expires_in"] <= registry.ttl

    async def test_refresh_with_new_weight_moves_the_index(self, client: httpx.AsyncClient) -> None:
        """A refresh that changes what lookups show bumps the service index; an identical one does not."""
        instance_id, service = unique("w"), unique("svc")
        await register(client, instance_id, service, ttl=30)
        first = (await lookup(client, service))["index"]
        await register(client, instance_id, service, ttl=30)
        same = (await lookup(client, service))["index"]
        await register(client, instance_id, service, ttl=30, weight=7)
        changed = await lookup(client, service)

        assert same == first
        assert changed["index"] > first
        assert changed["instances"][0]["weight"] == 7

    async def test_same_id_for_another_service_is_409(self, client: httpx.AsyncClient) -> None:
        """An id belongs to one service until it is deregistered."""
        instance_id, service = unique("c"), unique("svc")
        await register(client, instance_id, service, ttl=30)

        response = await client.put(f"/v1/instances/{instance_id}", json=body("another-service"))

        assert response.status_code == 409
        error = response.json()
        assert error["error"] == "conflict"
        assert instance_id in error["message"]
        assert service in error["message"]

    async def test_deregister_is_204_then_404(self, client: httpx.AsyncClient) -> None:
        """Deregistering removes the instance from lookups; a second attempt is 404 with a JSON error."""
        instance_id, service = unique("x"), unique("svc")
        await register(client, instance_id, service, ttl=30)

        first = await client.delete(f"/v1/instances/{instance_id}")
        second = await client.delete(f"/v1/instances/{instance_id}")

        assert first.status_code == 204
        assert first.content == b""
        assert second.status_code == 404
        assert second.json() == {
            "error": "not_found",
            "message": f"Instance '{instance_id}' is not registered.",
        }
        assert ids(await lookup(client, service, healthy="false")) == []
        assert (await client.get(f"/v1/instances/{instance_id}")).status_code == 404


@pytest.mark.behaviour("registry.ttl_eviction")
class TestHeartbeat:
    """Heartbeats keep an instance alive; unknown ids get 404 so clients re-register."""

    async def test_heartbeat_is_200_with_ttl(self, client: httpx.AsyncClient) -> None:
        instance_id = unique("hb")
        await register(client, instance_id, unique("svc"), ttl=5)

        response = await client.put(f"/v1/instances/{instance_id}/heartbeat")

        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"instance_id", "ttl", "expires_in"}
        assert (answer["instance_id"], answer["ttl"]) == (instance_id, 5.0)
        assert 4.5 < answer["expires_in"] <= 5.0

    async def test_heartbeat_of_unknown_instance_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.put(f"/v1/instances/{unique('nobody')}/heartbeat")

        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


@pytest.mark.behaviour("registry.ttl_eviction")
class TestExpiry:
    """An instance that stops heartbeating disappears after its TTL, and not before."""

    async def test_silent_instance_expires_within_ttl_plus_one_sweep(
        self, client: httpx.AsyncClient, registry: RunningRegistry
    ) -> None:
        ttl = 1.0
        service, silent, beating = unique("svc"), unique("silent"), unique("beating")
        await register(client, beating, service, ttl=ttl)
        sent = time.monotonic()
        await register(client, silent, service, ttl=ttl)

        async def silent_gone() -> bool | None:
            await client.put(f"/v1/instances/{beating}/heartbeat")
            return True if silent not in ids(await lookup(client, service, healthy="false")) else None

        await eventually(silent_gone, within=ttl + 3.0, what="expiry")
        gone_after = time.monotonic() - sent

        assert ttl - 0.02 <= gone_after <= ttl + 1.0
        assert ids(await lookup(client, service)) == [beating]  # heartbeats kept it past its TTL
        heartbeat = await client.put(f"/v1/instances/{silent}/heartbeat")
        assert heartbeat.status_code == 404  # the client's cue to register again
        expired = [e for e in events_for(registry, silent) if e["event"] == "registry.expired"]
        assert len(expired) == 1
        assert expired[0]["service"] == service
        assert "heartbeat" in expired[0]["reason"]


@pytest.mark.behaviour("registry.healthy_lookups")
class TestLookup:
    """Lookups list healthy instances sorted by id; unknown services are empty, not 404."""

    async def test_lookup_is_sorted_and_healthy_only(
        self, client: httpx.AsyncClient, health_target: HealthTarget
    ) -> None:
        service = unique("svc")
        for name in ("c", "a", "b"):
            await register(client, f"{service}-{name}", service, ttl=30)
        health_target.status = 503
        sick = f"{service}-0"
        await register(client, sick, service, ttl=30, health_url=health_target.url)

        await eventually(
            lambda: _is(instance_status(client, sick), "critical"), within=3.0, what="critical status"
        )
        healthy = await lookup(client, service)
        everything = await lookup(client, service, healthy="false")

        assert ids(healthy) == [f"{service}-a", f"{service}-b", f"{service}-c"]
        assert ids(everything) == [sick, f"{service}-a", f"{service}-b", f"{service}-c"]
        assert everything["instances"][0]["status"] == "critical"
        assert healthy["service"] == service
        assert healthy["index"] == everything["index"]

    async def test_unknown_service_is_an_empty_200(self, client: httpx.AsyncClient) -> None:
        listing = await lookup(client, unique("never"))
        assert listing["instances"] == []
        assert listing["index"] == 0

    async def test_services_summary_counts_instances(self, client: httpx.AsyncClient) -> None:
        service = unique("svc")
        await register(client, unique("i"), service, ttl=30)
        await register(client, unique("i"), service, ttl=30)

        response = await client.get("/v1/services")

        assert response.status_code == 200
        summary = response.json()
        assert summary["services"][service] == {"instances": 2, "healthy": 2}
        assert summary["index"] >= 2
        assert response.headers["X-Registry-Index"] == str(summary["index"])


async def _is(probe: Awaitable[str | None], expected: str) -> bool | None:
    return True if await probe == expected else None


@pytest.mark.behaviour("registry.health_check_eviction")
class TestActiveHealthChecks:
    """Failed checks make an instance critical at once and evict it after n in a row; a pass restores it."""

    async def test_failing_target_goes_critical_then_is_evicted(
        self, client: httpx.AsyncClient, registry: RunningRegistry, health_target: HealthTarget
    ) -> None:
        instance_id, service = unique("sick"), unique("svc")
        await register(client, instance_id, service, ttl=30, health_url=health_target.url)
        await eventually(
            lambda: _is(instance_status(client, instance_id), "passing"), within=3.0, what="a first pass"
        )

        health_target.status = 503
        _, critical_after = await eventually(
            lambda: _is(instance_status(client, instance_id), "critical"), within=3.0, what="critical"
        )
        assert instance_id not in ids(await lookup(client, service))
        _, gone_after = await eventually(
            lambda: _is(instance_status(client, instance_id), "gone"), within=5.0, what="eviction"
        )

        n, interval = registry.check_failures, registry.check_interval
        assert critical_after <= interval + registry.check_timeout + 0.5
        assert gone_after <= n * interval + 1.0
        events = {e["event"]: e for e in events_for(registry, instance_id)}  # the last of each kind
        changed, evicted = events["registry.health_changed"], events["registry.evicted"]
        assert changed["status"] == "critical"
        assert "status 503" in changed["reason"]
        assert evicted["mono"] - changed["mono"] >= (n - 1) * interval - 0.05  # n checks, not fewer
        assert f"{n} health checks failed" in evicted["reason"]

    async def test_recovering_target_passes_again(
        self, client: httpx.AsyncClient, health_target: HealthTarget
    ) -> None:
        instance_id, service = unique("flaky"), unique("svc")
        await register(client, instance_id, service, ttl=30, health_url=health_target.url)
        await eventually(lambda: _is(instance_status(client, instance_id), "passing"), within=3.0)
        start_index = (await lookup(client, service))["index"]

        health_target.status = 500
        await eventually(lambda: _is(instance_status(client, instance_id), "critical"), within=3.0)
        critical_index = (await lookup(client, service))["index"]
        health_target.status = 200
        await eventually(lambda: _is(instance_status(client, instance_id), "passing"), within=3.0)

        listing = await lookup(client, service)
        assert ids(listing) == [instance_id]
        assert listing["instances"][0]["consecutive_failures"] == 0
        assert start_index < critical_index < listing["index"]

    async def test_hanging_target_fails_by_timeout(
        self, client: httpx.AsyncClient, registry: RunningRegistry, health_target: HealthTarget
    ) -> None:
        """A target that never answers is never listed: each check times out, then it is evicted."""
        instance_id, service = unique("slow"), unique("svc")
        health_target.delay = 5.0
        await register(client, instance_id, service, ttl=30, health_url=health_target.url)

        await eventually(lambda: _is(instance_status(client, instance_id), "gone"), within=5.0)

        evicted = [e for e in events_for(registry, instance_id) if e["event"] == "registry.evicted"]
        assert f"no answer within {registry.check_timeout:g}s" in evicted[0]["reason"]
        assert ids(await lookup(client, service, healthy="false")) == []


@pytest.mark.behaviour("registry.critical_until_checked")
class TestFirstCheck:
    """A (re-)registered instance with a health URL is critical until its first check passes (as Consul)."""

    async def test_registered_instance_is_critical_until_a_check_passes(
        self, client: httpx.AsyncClient, health_target: HealthTarget
    ) -> None:
        instance_id, service = unique("new"), unique("svc")
        health_target.status = 503

        answer = await register(client, instance_id, service, ttl=30, health_url=health_target.url)

        assert answer.json()["status"] == "critical"
        assert ids(await lookup(client, service)) == []
        assert (await client.get("/v1/services")).json()["services"][service] == {
            "instances": 1,
            "healthy": 0,
        }
        health_target.status = 200
        await eventually(lambda: _is(instance_status(client, instance_id), "passing"), within=3.0)
        assert ids(await lookup(client, service)) == [instance_id]

    async def test_first_check_runs_at_once_not_after_an_interval(
        self, tmp_path: Path, health_target: HealthTarget
    ) -> None:
        """With checks every 30 s, a new instance still becomes usable within a fraction of a second."""
        running = start_registry(tmp_path, ttl=60.0, check_interval=30.0, check_timeout=1.0)
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=10.0, trust_env=False) as http:
                instance_id = unique("prompt")
                await register(http, instance_id, unique("svc"), ttl=60, health_url=health_target.url)
                _, took = await eventually(
                    lambda: _is(instance_status(http, instance_id), "passing"), within=10.0, what="passing"
                )
        finally:
            running.process.stop()
        print(f"first check passed {took * 1000:.0f} ms after registration (bound 1000 ms)")
        assert took < 1.0

    async def test_evicted_slow_instance_does_not_flap_back_on_its_heartbeat(
        self, tmp_path: Path, health_target: HealthTarget
    ) -> None:
        """A keeper re-registers its evicted, too slow instance; lookups never list it, not even briefly."""
        running = start_registry(tmp_path, ttl=5.0, check_interval=0.2, check_timeout=0.2, check_failures=2)
        health_target.delay = 5.0
        instance_id, service = unique("slow"), unique("svc")
        registration = Registration(
            instance_id=instance_id, service=service, address="127.0.0.1", port=9000,
            health_url=health_target.url, ttl=5.0,
        )  # fmt: skip
        try:
            async with RegistryClient(running.url) as registry:
                watch = RegistryLookup(registry, wait=5.0)
                assert await watch.instances(service) == ()
                keeper = RegistrationKeeper(registry, registration, interval=0.05)
                await keeper.start()
                try:
                    await poll(
                        lambda: _true(keeper.reregistrations >= 2), within=10.0, what="two re-registrations"
                    )
                finally:
                    await keeper.stop()
                    await watch.aclose()
        finally:
            running.process.stop()

        events = events_for(running, instance_id)
        registered = [e for e in events if e["event"] == "registry.registered"]
        assert len(registered) >= 3
        assert {e["status"] for e in registered} == {"critical"}
        assert [e for e in events if e["event"] == "registry.health_changed"] == []
        assert len([e for e in events if e["event"] == "registry.evicted"]) >= 2
        seen = [e for e in watch.events.of_type("discovery.membership_changed") if instance_id in e["added"]]
        assert seen == []


async def _true(condition: bool) -> bool | None:
    return True if condition else None


async def _hit(target: HealthTarget) -> bool | None:
    return True if target.hits > 0 else None


async def wait_until_blocked(client: httpx.AsyncClient) -> None:
    """Poll the registry's gauge until a blocking query is waiting there."""

    async def blocked() -> bool | None:
        text = (await client.get("/metrics")).text
        line = next(line for line in text.splitlines() if line.startswith("registry_blocking_queries "))
        return True if float(line.split()[1]) >= 1 else None

    await eventually(blocked, within=5.0, what="the query to block")


@pytest.mark.behaviour("registry.blocking_queries")
class TestBlockingQueries:
    """``index`` + ``wait`` hold a lookup until the service changes or the wait runs out."""

    async def test_returns_promptly_on_a_change(self, client: httpx.AsyncClient) -> None:
        service, first, second = unique("svc"), unique("a"), unique("b")
        await register(client, first, service, ttl=30)
        index = (await lookup(client, service))["index"]

        query = asyncio.create_task(lookup(client, service, index=index, wait=20))
        await wait_until_blocked(client)
        assert not query.done()
        changed_at = time.monotonic()
        await register(client, second, service, ttl=30)
        listing = await asyncio.wait_for(query, timeout=5.0)

        assert time.monotonic() - changed_at < 1.0
        assert listing["index"] > index
        assert set(ids(listing)) == {first, second}

    async def test_returns_after_wait_when_nothing_changes(self, client: httpx.AsyncClient) -> None:
        service = unique("svc")
        await register(client, unique("a"), service, ttl=30)
        index = (await lookup(client, service))["index"]

        started = time.monotonic()
        listing = await lookup(client, service, index=index, wait=0.5)
        took = time.monotonic() - started

        assert 0.5 <= took <= 1.5
        assert listing["index"] == index

    async def test_other_index_answers_at_once(self, client: httpx.AsyncClient) -> None:
        service = unique("svc")
        await register(client, unique("a"), service, ttl=30)
        index = (await lookup(client, service))["index"]

        started = time.monotonic()
        listing = await lookup(client, service, index=index - 1, wait=10)

        assert time.monotonic() - started < 1.0
        assert listing["index"] == index

    async def test_watch_sees_a_service_appear(self, client: httpx.AsyncClient) -> None:
        service, instance_id = unique("later"), unique("a")

        query = asyncio.create_task(lookup(client, service, index=0, wait=20))
        await wait_until_blocked(client)
        await register(client, instance_id, service, ttl=30)
        listing = await asyncio.wait_for(query, timeout=5.0)

        assert ids(listing) == [instance_id]
        assert listing["index"] > 0


@pytest.mark.behaviour("registry.blocking_queries")
class TestShutdown:
    """SIGTERM answers blocked queries at once instead of holding shutdown for the graceful timeout."""

    async def test_stop_answers_blocked_queries(self, tmp_path: Path) -> None:
        running = start_registry(tmp_path)
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=10.0, trust_env=False) as http:
                query = asyncio.create_task(lookup(http, unique("svc"), index=0, wait=60))
                await wait_until_blocked(http)
                started = time.monotonic()
                await asyncio.to_thread(running.process.stop)
                took = time.monotonic() - started
                listing = await asyncio.wait_for(query, timeout=5.0)
        finally:
            running.process.kill()

        assert took < 2.0  # the graceful timeout alone is 5 s
        assert listing["instances"] == []


@pytest.mark.behaviour("services.operations")
class TestOperations:
    """Health, metrics and the event log."""

    async def test_health(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "service": "registry"}

    async def test_metrics_show_instances_and_requests(self, client: httpx.AsyncClient) -> None:
        service = unique("svc")
        await register(client, unique("m"), service, ttl=30)

        response = await client.get("/metrics")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert f'registry_instances{{service="{service}",status="passing"}} 1.0' in text
        assert f'registry_instances{{service="{service}",status="critical"}} 0.0' in text
        assert 'route="/v1/instances/{instance_id}"' in text  # templates, not raw paths
        assert "registry_registrations_total" in text
        assert "registry_health_checks_total" in text

    async def test_membership_changes_are_events(
        self, client: httpx.AsyncClient, registry: RunningRegistry
    ) -> None:
        instance_id, service = unique("e"), unique("svc")
        await register(client, instance_id, service, ttl=30)
        await register(client, instance_id, service, ttl=30)
        await client.delete(f"/v1/instances/{instance_id}")

        names = [e["event"] for e in events_for(registry, instance_id)]

        assert names == ["registry.registered", "registry.reregistered", "registry.deregistered"]
        assert all(e["service"] == service and e["reason"] for e in events_for(registry, instance_id))


TOKEN = "t0ken-for-this-test-only-0123456789"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry started with a token file: writes need the token."""
    workdir = tmp_path_factory.mktemp("guarded")
    token_file = workdir / "registry.token"
    token_file.write_text(TOKEN + "\n")
    running = start_registry(workdir, token_file=token_file)
    try:
        yield running
    finally:
        running.process.stop()


WRITES = [
    pytest.param("PUT", "/v1/instances/{id}", id="register"),
    pytest.param("PUT", "/v1/instances/{id}/heartbeat", id="heartbeat"),
    pytest.param("DELETE", "/v1/instances/{id}", id="deregister"),
]


@pytest.mark.behaviour("registry.write_token")
class TestWriteToken:
    """With a token, writes without it are 401 and with a wrong one 403; reads stay open."""

    @pytest.mark.parametrize(("method", "path"), WRITES)
    async def test_write_without_token_is_401(self, guarded: RunningRegistry, method: str, path: str) -> None:
        async with httpx.AsyncClient(base_url=guarded.url, trust_env=False) as http:
            instance_id = unique("victim")
            await register(http, instance_id, "users", ttl=30, headers={"X-Registry-Token": TOKEN})
            response = await http.request(method, path.format(id=instance_id), json=body("users"))
            still = await http.get(f"/v1/instances/{instance_id}")

        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert "X-Registry-Token" in response.json()["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert still.status_code == 200  # nothing changed

    @pytest.mark.parametrize(("method", "path"), WRITES)
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({b"X-Registry-Token": TOKEN[:-1].encode() + b"X"}, id="header"),
            pytest.param({b"Authorization": f"Bearer {TOKEN}-and-more".encode()}, id="bearer"),
            pytest.param({b"X-Registry-Token": "\u00e9".encode() * 20}, id="utf-8"),
        ],
    )
    async def test_write_with_wrong_token_is_403(
        self, guarded: RunningRegistry, method: str, path: str, headers: dict[bytes, bytes]
    ) -> None:
        async with httpx.AsyncClient(base_url=guarded.url, trust_env=False) as http:
            instance_id = unique("victim")
            await register(http, instance_id, "users", ttl=30, headers={"X-Registry-Token": TOKEN})
            response = await http.request(
                method, path.format(id=instance_id), json=body("users", port=9999), headers=headers
            )
            still = await http.get(f"/v1/instances/{instance_id}")

        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        assert TOKEN not in response.text
        assert (still.status_code, still.json()["port"]) == (200, 9000)

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({"X-Registry-Token": TOKEN}, id="header"),
            pytest.param({"Authorization": f"Bearer {TOKEN}"}, id="bearer"),
        ],
    )
    async def test_writes_with_the_token_work(
        self, guarded: RunningRegistry, headers: dict[str, str]
    ) -> None:
        async with httpx.AsyncClient(base_url=guarded.url, trust_env=False, headers=headers) as http:
            instance_id = unique("ok")
            first = await http.put(f"/v1/instances/{instance_id}", json=body("users"))
            beat = await http.put(f"/v1/instances/{instance_id}/heartbeat")
            gone = await http.delete(f"/v1/instances/{instance_id}")
        assert (first.status_code, beat.status_code, gone.status_code) == (201, 200, 204)

    async def test_reads_are_open(self, guarded: RunningRegistry) -> None:
        async with httpx.AsyncClient(base_url=guarded.url, trust_env=False) as http:
            instance_id, service = unique("read"), unique("svc")
            await register(http, instance_id, service, ttl=30, headers={"X-Registry-Token": TOKEN})
            answers = [
                await http.get(path)
                for path in ("/v1/services", f"/v1/services/{service}/instances",
                             f"/v1/instances/{instance_id}", "/health", "/metrics")
            ]  # fmt: skip
        assert [a.status_code for a in answers] == [200] * 5
        assert ids(answers[1].json()) == [instance_id]

    async def test_registry_client_sends_the_token_and_names_a_refusal(
        self, guarded: RunningRegistry
    ) -> None:
        registration = Registration(instance_id=unique("c"), service="users", address="127.0.0.1", port=9000)
        async with RegistryClient(guarded.url, token=TOKEN) as right, RegistryClient(guarded.url) as none:
            view = await right.register(registration)
            with pytest.raises(RegistryRefused, match=r"refused heartbeat \(401\).*no token"):
                await none.heartbeat(registration.instance_id)
            async with RegistryClient(guarded.url, token="w" * 32) as wrong:
                with pytest.raises(RegistryRefused, match=r"refused deregister \(403\).*wrong token"):
                    await wrong.deregister(registration.instance_id)
            assert await right.deregister(registration.instance_id) is True
        assert view.instance_id == registration.instance_id
        assert RegistryRefused.exit_code == 2

    async def test_token_from_the_environment(self, tmp_path: Path) -> None:
        """``HARNESS_REGISTRY_TOKEN`` configures it too (no flag: a command line is visible in ps)."""
        spec = ProcessSpec("registry", "registry", env={**child_env(), "HARNESS_REGISTRY_TOKEN": TOKEN})
        process = ServiceProcess(spec, workdir=tmp_path).start()
        try:
            async with httpx.AsyncClient(base_url=process.url, trust_env=False) as http:
                refused = await http.put(f"/v1/instances/{unique('e')}", json=body("users"))
                accepted = await http.put(
                    f"/v1/instances/{unique('e')}", json=body("users"), headers={"X-Registry-Token": TOKEN}
                )
        finally:
            process.stop()
        assert (refused.status_code, accepted.status_code) == (401, 201)
        assert TOKEN not in " ".join(process.command())

    async def test_startup_line_says_whether_writes_are_open(
        self, guarded: RunningRegistry, registry: RunningRegistry
    ) -> None:
        guarded_log = guarded.process.log_path.read_text()
        open_log = registry.process.log_path.read_text()
        assert "writes need the token" in guarded_log
        assert TOKEN not in guarded_log
        assert "writes are OPEN to any local process" in open_log
        started = [e for e in read_events(registry.event_log) if e["event"] == "registry.started"]
        assert started[0]["writes"] == "open"
        assert [e["writes"] for e in read_events(guarded.event_log) if e["event"] == "registry.started"] == [
            "token"
        ]

    async def test_openapi_documents_the_token_on_writes_only(
        self, guarded: RunningRegistry, registry: RunningRegistry
    ) -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            spec = (await http.get(f"{guarded.url}/openapi.json")).json()
            open_spec = (await http.get(f"{registry.url}/openapi.json")).json()
        put = spec["paths"]["/v1/instances/{instance_id}"]["put"]
        get = spec["paths"]["/v1/instances/{instance_id}"]["get"]
        assert {"401", "403"} <= set(put["responses"])
        assert put["security"]
        assert "security" not in get
        assert "security" not in open_spec["paths"]["/v1/instances/{instance_id}"]["put"]
