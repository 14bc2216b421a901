"""RegistryClient, RegistrationKeeper and RegistryLookup against a respx-mocked registry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
import respx

from harness.discovery import Registration, RegistrationKeeper, RegistryClient, RegistryLookup
from harness.errors import RegistryError, RegistryRefused, RegistryUnavailable
from harness.events import EventLog

BASE = "http://registry.test"
REGISTRATION = Registration(instance_id="users-1", service="users", address="127.0.0.1", port=9001)


def view(instance_id: str, port: int) -> dict[str, Any]:
    return {
        "instance_id": instance_id,
        "service": "users",
        "address": "127.0.0.1",
        "port": port,
        "health_url": None,
        "metadata": {},
        "weight": 1,
        "status": "passing",
    }


def listing(index: int, *ids: str) -> httpx.Response:
    body = {
        "service": "users",
        "index": index,
        "instances": [view(i, 9000 + n) for n, i in enumerate(ids, start=1)],
    }
    return httpx.Response(200, json=body, headers={"X-Registry-Index": str(index)})


def signal_on(events: EventLog, name: str, times: int = 1) -> asyncio.Event:
    """An asyncio.Event set once ``name`` has been emitted ``times`` times."""
    fired = asyncio.Event()
    seen = 0

    def listener(record: Mapping[str, Any]) -> None:
        nonlocal seen
        if record["event"] == name:
            seen += 1
            if seen >= times:
                fired.set()

    events.listeners.append(listener)
    return fired


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.mark.behaviour("registry.registration")
class TestRegistryClient:
    async def test_register_sends_the_body_without_the_id(self, mock: respx.MockRouter) -> None:
        """PUT /v1/instances/{id} carries service, address, port and the defaults."""
        route = mock.put("/v1/instances/users-1").mock(
            return_value=httpx.Response(201, json=view("users-1", 9001))
        )
        async with RegistryClient(BASE) as registry:
            answer = await registry.register(REGISTRATION)
        assert answer.instance_id == "users-1"
        sent = route.calls.last.request
        assert sent.headers["content-type"] == "application/json"
        assert b'"instance_id"' not in sent.content
        assert b'"service":"users"' in sent.content.replace(b" ", b"")

    @pytest.mark.parametrize(
        ("status", "expected"),
        [pytest.param(200, True, id="known"), pytest.param(404, False, id="forgotten")],
    )
    async def test_heartbeat_reports_whether_the_registry_knows_us(
        self, mock: respx.MockRouter, status: int, expected: bool
    ) -> None:
        """200 means known, 404 means re-register."""
        body = (
            {"instance_id": "users-1", "ttl": 10.0, "expires_in": 10.0}
            if status == 200
            else {"error": "not_found"}
        )
        mock.put("/v1/instances/users-1/heartbeat").mock(return_value=httpx.Response(status, json=body))
        async with RegistryClient(BASE) as registry:
            assert await registry.heartbeat("users-1") is expected

    async def test_unreachable_registry_raises_registry_unavailable(self, mock: respx.MockRouter) -> None:
        """A connect error becomes RegistryUnavailable naming the operation and the URL."""
        mock.get("/v1/services/users/instances").mock(side_effect=httpx.ConnectError("refused"))
        async with RegistryClient(BASE) as registry:
            with pytest.raises(RegistryUnavailable, match=r"registry\.test.*lookup"):
                await registry.instances("users")

    @pytest.mark.parametrize(
        "response",
        [
            pytest.param(httpx.Response(500, text="boom"), id="server-error"),
            pytest.param(httpx.Response(200, json={"unexpected": True}), id="wrong-shape"),
            pytest.param(httpx.Response(200, text="not json"), id="not-json"),
        ],
    )
    async def test_odd_answers_raise_registry_error(
        self, mock: respx.MockRouter, response: httpx.Response
    ) -> None:
        """A status or body the client does not expect is a RegistryError, never a crash deeper down."""
        mock.get("/v1/services/users/instances").mock(return_value=response)
        async with RegistryClient(BASE) as registry:
            with pytest.raises(RegistryError, match="lookup"):
                await registry.instances("users")

    async def test_blocking_query_sends_index_and_wait(self, mock: respx.MockRouter) -> None:
        """A watch passes index and wait, and its HTTP timeout outlasts the wait."""
        route = mock.get("/v1/services/users/instances").mock(return_value=listing(7, "users-1"))
        async with RegistryClient(BASE, timeout=2.0) as registry:
            await registry.instances("users", index=6, wait=5.0)
        request = route.calls.last.request
        assert request.url.params["index"] == "6"
        assert request.url.params["wait"] == "5"
        assert request.extensions["timeout"]["read"] == pytest.approx(7.0)


@pytest.mark.behaviour("registry.write_token")
class TestToken:
    """With a token, every write carries it in X-Registry-Token; reads carry none; refusals are named."""

    async def test_writes_carry_the_token_and_reads_do_not(self, mock: respx.MockRouter) -> None:
        writes = [
            mock.put("/v1/instances/users-1").mock(
                return_value=httpx.Response(201, json=view("users-1", 9001))
            ),
            mock.put("/v1/instances/users-1/heartbeat").mock(
                return_value=httpx.Response(
                    200, json={"instance_id": "users-1", "ttl": 1.0, "expires_in": 1.0}
                )
            ),
            mock.delete("/v1/instances/users-1").mock(return_value=httpx.Response(204)),
        ]
        read = mock.get("/v1/services/users/instances").mock(return_value=listing(1, "users-1"))
        async with RegistryClient(BASE, token="s3cret-token-0123456789") as registry:
            await registry.register(REGISTRATION)
            await registry.heartbeat("users-1")
            await registry.deregister("users-1")
            await registry.instances("users")
            shown = repr(registry)
        assert [w.calls.last.request.headers["X-Registry-Token"] for w in writes] == [
            "s3cret-token-0123456789"
        ] * 3
        assert "x-registry-token" not in read.calls.last.request.headers
        assert "s3cret" not in shown

    async def test_without_a_token_no_header_is_sent(self, mock: respx.MockRouter) -> None:
        route = mock.put("/v1/instances/users-1").mock(
            return_value=httpx.Response(201, json=view("users-1", 9001))
        )
        async with RegistryClient(BASE) as registry:
            await registry.register(REGISTRATION)
        assert "x-registry-token" not in route.calls.last.request.headers

    @pytest.mark.parametrize(
        ("status", "sent"),
        [pytest.param(401, "no token", id="401"), pytest.param(403, "a wrong token", id="403")],
    )
    async def test_a_refused_write_raises_registry_refused(
        self, mock: respx.MockRouter, status: int, sent: str
    ) -> None:
        mock.put("/v1/instances/users-1/heartbeat").mock(
            return_value=httpx.Response(status, json={"error": "x", "message": "y"})
        )
        async with RegistryClient(BASE) as registry:
            with pytest.raises(RegistryRefused, match=f"refused heartbeat \\({status}\\).*{sent}") as info:
                await registry.heartbeat("users-1")
        assert info.value.exit_code == 2

    async def test_keeper_logs_a_refusal_as_such_not_as_an_outage(self, mock: respx.MockRouter) -> None:
        """A registry restarted with another token: ``discovery.registry_refused``, once, then recovery."""
        mock.put("/v1/instances/users-1").mock(return_value=httpx.Response(201, json=view("users-1", 9001)))
        ok = httpx.Response(200, json={"instance_id": "users-1", "ttl": 1.0, "expires_in": 1.0})
        refused = httpx.Response(403, json={"error": "forbidden", "message": "wrong token"})
        mock.put("/v1/instances/users-1/heartbeat").mock(side_effect=[refused] * 3 + [ok] * 1000)
        mock.delete("/v1/instances/users-1").mock(return_value=httpx.Response(204))
        events = EventLog("test")
        async with RegistryClient(BASE, token="t" * 20) as registry:
            keeper = RegistrationKeeper(registry, REGISTRATION, interval=0.001, events=events)
            recovered = signal_on(events, "discovery.registry_recovered")
            await keeper.start()
            await asyncio.wait_for(recovered.wait(), 5.0)
            await keeper.stop()
        assert len(events.of_type("discovery.registry_refused")) == 1
        assert events.of_type("discovery.registry_unreachable") == []


@pytest.mark.behaviour("registry.registration")
class TestRegistrationKeeper:
    async def test_reregisters_when_the_registry_forgot_the_instance(self, mock: respx.MockRouter) -> None:
        """A 404 heartbeat leads to a fresh registration, and stop() deregisters."""
        register = mock.put("/v1/instances/users-1").mock(
            return_value=httpx.Response(201, json=view("users-1", 9001))
        )
        beats = mock.put("/v1/instances/users-1/heartbeat").mock(
            return_value=httpx.Response(404, json={"error": "not_found"})
        )
        deregister = mock.delete("/v1/instances/users-1").mock(return_value=httpx.Response(204))
        events = EventLog("test")
        async with RegistryClient(BASE) as registry:
            keeper = RegistrationKeeper(registry, REGISTRATION, interval=0.001, events=events)
            twice = signal_on(events, "discovery.reregistered", times=2)
            await keeper.start()
            await asyncio.wait_for(twice.wait(), 5.0)
            await keeper.stop()
        assert register.call_count >= 3
        assert beats.call_count >= 2
        assert deregister.call_count == 1
        assert events.of_type("discovery.reregistered")

    async def test_keeps_heartbeating_through_a_registry_outage(self, mock: respx.MockRouter) -> None:
        """Connect errors are logged once per outage and the loop carries on until the registry is back."""
        mock.put("/v1/instances/users-1").mock(return_value=httpx.Response(201, json=view("users-1", 9001)))
        ok = httpx.Response(200, json={"instance_id": "users-1", "ttl": 1.0, "expires_in": 1.0})
        beats = mock.put("/v1/instances/users-1/heartbeat").mock(
            side_effect=[httpx.ConnectError("down")] * 3 + [ok] * 1000
        )
        mock.delete("/v1/instances/users-1").mock(return_value=httpx.Response(204))
        events = EventLog("test")
        async with RegistryClient(BASE) as registry:
            keeper = RegistrationKeeper(registry, REGISTRATION, interval=0.001, events=events)
            recovered = signal_on(events, "discovery.registry_recovered")
            await keeper.start()
            await asyncio.wait_for(recovered.wait(), 5.0)
            await keeper.stop()
        assert beats.call_count >= 4
        assert len(events.of_type("discovery.registry_unreachable")) == 1


class TestRegistryLookup:
    @pytest.mark.behaviour("discovery.cache_through_outage")
    async def test_serves_the_last_list_while_the_registry_is_down(self, mock: respx.MockRouter) -> None:
        """After the first answer, connect errors leave the cached list in place."""
        route = mock.get("/v1/services/users/instances").mock(
            side_effect=[listing(3, "users-1", "users-2")] + [httpx.ConnectError("down")] * 1000
        )
        events = EventLog("test")
        async with RegistryClient(BASE) as registry:
            lookup = RegistryLookup(registry, retry_delay=0.001, max_retry_delay=0.001, events=events)
            down = signal_on(events, "discovery.registry_unreachable")
            first = await lookup.instances("users")
            await asyncio.wait_for(down.wait(), 5.0)
            again = await lookup.instances("users")
            await lookup.aclose()
        assert [i.id for i in first] == [i.id for i in again] == ["users-1", "users-2"]
        assert route.call_count >= 2
        assert len(events.of_type("discovery.registry_unreachable")) == 1

    @pytest.mark.behaviour("discovery.follows_membership")
    async def test_follows_membership_changes(self, mock: respx.MockRouter) -> None:
        """The watch applies a new list as soon as the blocking query returns it."""
        gate = asyncio.Event()

        async def answers(request: httpx.Request) -> httpx.Response:
            index = request.url.params.get("index")
            if index is None:
                return listing(3, "users-1", "users-2")
            if index == "3":
                await gate.wait()
                return listing(4, "users-2")
            await asyncio.Event().wait()  # hold further watches open, as the registry does
            raise AssertionError("unreachable")

        mock.get("/v1/services/users/instances").mock(side_effect=answers)
        async with RegistryClient(BASE) as registry:
            lookup = RegistryLookup(registry)
            assert len(await lookup.instances("users")) == 2
            gate.set()
            assert await lookup.wait_for_change("users", within=5.0)
            assert [i.id for i in await lookup.instances("users")] == ["users-2"]
            await lookup.aclose()
