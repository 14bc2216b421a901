"""RegistryLookup's refresh modes against a respx-mocked registry: watch (default), poll, never refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from harness.discovery import DiscoveryRefresh, RegistryClient, RegistryLookup
from harness.events import EventLog

BASE = "http://registry.test"
PATH = "/v1/services/users/instances"


class FakeRegistry:
    """Answers lookups with whatever ``ids`` holds now, a blocking query once they change (as the registry
    does); counts the queries and keeps their parameters."""

    def __init__(self, *ids: str) -> None:
        self.ids = list(ids)
        self.index = 1
        self.queries: list[dict[str, str]] = []
        self._changed = asyncio.Event()

    def change(self, *ids: str) -> None:
        self.ids = list(ids)
        self.index += 1
        self._changed.set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.queries.append(dict(request.url.params))
        if int(request.url.params.get("index", 0)) >= self.index:
            self._changed.clear()
            await self._changed.wait()
        views = [_view(i, 9000 + n) for n, i in enumerate(self.ids, start=1)]
        return httpx.Response(200, json={"service": "users", "index": self.index, "instances": views})


def _view(instance_id: str, port: int) -> dict[str, Any]:
    return {"instance_id": instance_id, "service": "users", "address": "127.0.0.1", "port": port,
            "health_url": None, "metadata": {}, "weight": 1, "status": "passing"}  # fmt: skip


class YieldingSleep:
    """Stands in for asyncio.sleep: records each delay and only yields to the event loop."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


async def settle(turns: int = 50) -> None:
    """Let the refresh task run for a bounded number of event-loop turns."""
    for _ in range(turns):
        await asyncio.sleep(0)


def ids(instances: object) -> list[str]:
    return [i.id for i in instances]  # type: ignore[attr-defined]


@pytest.mark.behaviour("discovery.follows_membership")
class TestPoll:
    async def test_without_watch_the_list_is_looked_up_every_interval(self, mock: respx.MockRouter) -> None:
        """watch = false: plain lookups (no index, no wait) one refresh_interval apart pick up a change."""
        registry = FakeRegistry("users-1", "users-2")
        mock.get(PATH).mock(side_effect=registry)
        sleep = YieldingSleep()
        refresh = {"users": DiscoveryRefresh(watch=False, interval=0.5)}
        async with RegistryClient(BASE) as client:
            lookup = RegistryLookup(client, refresh=refresh, events=EventLog("test"), sleep=sleep)
            assert ids(await lookup.instances("users")) == ["users-1", "users-2"]
            registry.change("users-1")
            assert await lookup.wait_for_change("users", within=5.0)
            assert ids(lookup.known("users")) == ["users-1"]
            await lookup.aclose()
        assert all("index" not in q and "wait" not in q for q in registry.queries)
        assert sleep.delays
        assert set(sleep.delays) == {0.5}


@pytest.mark.behaviour("discovery.follows_membership")
class TestNeverRefresh:
    async def test_the_first_answer_is_kept_forever(self, mock: respx.MockRouter) -> None:
        """watch = false, refresh_interval = 0: one lookup; a later change in the registry is never seen."""
        registry = FakeRegistry("users-1", "users-2")
        mock.get(PATH).mock(side_effect=registry)
        refresh = {"users": DiscoveryRefresh(watch=False, interval=0)}
        async with RegistryClient(BASE) as client:
            lookup = RegistryLookup(client, refresh=refresh, events=EventLog("test"), sleep=YieldingSleep())
            assert ids(await lookup.instances("users")) == ["users-1", "users-2"]
            registry.change("users-1")
            for _ in range(20):
                await settle()
                assert ids(await lookup.instances("users")) == ["users-1", "users-2"]
            await lookup.aclose()
        assert len(registry.queries) == 1

    async def test_an_empty_first_answer_is_asked_again(self, mock: respx.MockRouter) -> None:
        """Before any instance registered, the list fills in once; after that it stays as it was."""
        registry = FakeRegistry()
        mock.get(PATH).mock(side_effect=registry)
        refresh = {"users": DiscoveryRefresh(watch=False, interval=0)}
        async with RegistryClient(BASE) as client:
            lookup = RegistryLookup(client, refresh=refresh, events=EventLog("test"), sleep=YieldingSleep())
            assert ids(await lookup.instances("users")) == []
            registry.change("users-1")
            assert await lookup.wait_for_change("users", within=5.0)
            asked = len(registry.queries)
            registry.change("users-1", "users-2")
            await settle()
            assert ids(await lookup.instances("users")) == ["users-1"]
            await lookup.aclose()
        assert len(registry.queries) == asked

    def test_never_refreshing_while_watching_is_refused(self) -> None:
        """refresh_interval = 0 with watch = true contradicts itself: a clear ValueError."""
        with pytest.raises(ValueError, match="watch = false"):
            DiscoveryRefresh(watch=True, interval=0)


@pytest.mark.behaviour("discovery.follows_membership")
class TestWatchByDefault:
    async def test_an_unnamed_service_is_followed_by_blocking_queries(self, mock: respx.MockRouter) -> None:
        """Without a refresh setting the lookup watches as before: each follow-up carries index and wait."""
        registry = FakeRegistry("users-1")
        mock.get(PATH).mock(side_effect=registry)
        sleep = YieldingSleep()
        async with RegistryClient(BASE) as client:
            lookup = RegistryLookup(client, wait=7.0, events=EventLog("test"), sleep=sleep)
            await lookup.instances("users")
            registry.change("users-1", "users-2")
            assert await lookup.wait_for_change("users", within=5.0)
            await lookup.aclose()
        assert registry.queries[0].get("index") is None
        assert registry.queries[1]["wait"] == "7"
        assert "index" in registry.queries[1]
        assert sleep.delays == []
