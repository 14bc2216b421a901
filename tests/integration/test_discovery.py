"""Discovery end to end on loopback: a real registry process, real echo processes, the real client stack."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from harness.discovery import RegistryClient, RegistryLookup, ServiceClient, ServiceClientConfig
from harness.resilience import BreakerConfig, BreakerState, RetryPolicy
from harness.stack import ProcessSpec, ServiceProcess, SettingValue

from .conftest import start_registry

TTL = 1.0
CHECK_INTERVAL = 0.2
CHECK_TIMEOUT = 0.3


def start_echo(workdir: Path, registry_url: str, n: int) -> ServiceProcess:
    settings: dict[str, SettingValue] = {"instance_id": f"echo-{n}", "registry": registry_url, "ttl": TTL,
                "heartbeat_interval": TTL / 5, "event_log": workdir / f"echo-{n}.jsonl"}  # fmt: skip
    return ServiceProcess(ProcessSpec(f"echo-{n}", "echo", settings), workdir=workdir).start()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def registry(workdir: Path) -> Iterator[ServiceProcess]:
    process = start_registry(
        workdir, ttl=TTL, check_interval=CHECK_INTERVAL, check_timeout=CHECK_TIMEOUT
    ).process
    yield process
    process.stop()


@pytest.fixture
def echoes(workdir: Path, registry: ServiceProcess) -> Iterator[dict[str, ServiceProcess]]:
    processes = {f"echo-{n}": start_echo(workdir, registry.url, n) for n in (1, 2, 3)}
    yield processes
    for process in processes.values():
        if process.is_running():
            os.kill(process.pid or 0, signal.SIGCONT)
        process.stop()


@pytest.fixture
async def lookup(registry: ServiceProcess) -> AsyncIterator[RegistryLookup]:
    async with RegistryClient(registry.url) as client:
        lookup = RegistryLookup(client, wait=2.0, retry_delay=0.05, max_retry_delay=0.2)
        yield lookup
        await lookup.aclose()


async def members(lookup: RegistryLookup) -> set[str]:
    return {instance.id for instance in await lookup.instances("echo")}


async def wait_until_members(lookup: RegistryLookup, expected: set[str], within: float) -> float:
    """Seconds until the cached list equals ``expected``; fails the test after ``within`` seconds."""
    began = time.monotonic()
    while await members(lookup) != expected:
        left = within - (time.monotonic() - began)
        if left <= 0:
            pytest.fail(
                f"lookups show {sorted(await members(lookup))}, expected {sorted(expected)} within {within}s"
            )
        await lookup.wait_for_change("echo", within=left)
    return time.monotonic() - began


class TestMembership:
    @pytest.mark.behaviour("registry.registration")
    async def test_instances_register_and_appear_in_lookups(
        self, echoes: dict[str, ServiceProcess], lookup: RegistryLookup
    ) -> None:
        """Three echo processes register themselves and the lookup lists all three with their real ports."""
        await wait_until_members(lookup, set(echoes), within=5.0)
        ports = {i.id: i.port for i in await lookup.instances("echo")}
        assert ports == {name: process.port for name, process in echoes.items()}

    @pytest.mark.behaviour("registry.health_check_eviction")
    async def test_killed_instance_leaves_lookups(
        self, echoes: dict[str, ServiceProcess], lookup: RegistryLookup
    ) -> None:
        """SIGKILL: the next failed health check takes it out of the healthy list."""
        await wait_until_members(lookup, set(echoes), within=5.0)
        echoes["echo-3"].kill()
        took = await wait_until_members(lookup, {"echo-1", "echo-2"}, within=5.0)
        assert took <= CHECK_INTERVAL + CHECK_TIMEOUT + 1.0

    @pytest.mark.behaviour("registry.ttl_eviction", "registry.health_check_eviction")
    async def test_silent_instance_is_evicted_within_ttl_and_returns_when_it_wakes(
        self, echoes: dict[str, ServiceProcess], lookup: RegistryLookup
    ) -> None:
        """SIGSTOP: no heartbeats or health answers; gone within TTL + one check interval; back on SIGCONT."""
        await wait_until_members(lookup, set(echoes), within=5.0)
        pid = echoes["echo-2"].pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            took = await wait_until_members(lookup, {"echo-1", "echo-3"}, within=5.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert took <= TTL + CHECK_INTERVAL + 0.5
        await wait_until_members(lookup, set(echoes), within=5.0)

    @pytest.mark.behaviour("registry.registration")
    async def test_graceful_stop_deregisters(
        self, echoes: dict[str, ServiceProcess], lookup: RegistryLookup, registry: ServiceProcess
    ) -> None:
        """SIGTERM: the instance deregisters on its way out, which the registry logs as such."""
        await wait_until_members(lookup, set(echoes), within=5.0)
        echoes["echo-1"].stop()
        await wait_until_members(lookup, {"echo-2", "echo-3"}, within=5.0)
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{registry.url}/v1/instances/echo-1")
        assert answer.status_code == 404


@pytest.mark.behaviour("discovery.cache_through_outage", "discovery.follows_membership")
class TestRegistryOutage:
    async def test_cache_serves_during_outage_and_catches_up(
        self,
        workdir: Path,
        registry: ServiceProcess,
        echoes: dict[str, ServiceProcess],
        lookup: RegistryLookup,
    ) -> None:
        """Registry down: calls flow on the cached list; restarted: instances re-register, lookups see it."""
        await wait_until_members(lookup, set(echoes), within=5.0)
        assert registry.port is not None
        port = registry.port
        registry.stop()
        async with ServiceClient("echo", lookup) as client:
            for n in range(9):
                assert (await client.get("/echo", params={"msg": str(n)})).status_code == 200
            assert {i for i, s in client.stats().items() if s.successes} == set(echoes)
        assert await members(lookup) == set(echoes)

        restarted = start_registry(
            workdir, port=port, ttl=TTL, check_interval=CHECK_INTERVAL, check_timeout=CHECK_TIMEOUT
        ).process
        try:
            async with RegistryClient(restarted.url) as fresh:
                answer = await fresh.instances("echo")
                deadline = time.monotonic() + 5.0
                while {i.instance_id for i in answer.instances} != set(
                    echoes
                ) and time.monotonic() < deadline:
                    answer = await fresh.instances("echo", index=answer.index, wait=1.0)
            assert {i.instance_id for i in answer.instances} == set(echoes)
            newcomer = start_echo(workdir, restarted.url, 4)
            try:
                await wait_until_members(lookup, {*echoes, "echo-4"}, within=5.0)
            finally:
                newcomer.stop()
        finally:
            restarted.stop()


class TestServiceClientAgainstRealInstances:
    @pytest.mark.behaviour("breaker.opens", "breaker.rejects_while_open", "balancer.skips_open_breakers")
    async def test_failing_instance_is_shielded_by_its_breaker(
        self, echoes: dict[str, ServiceProcess], lookup: RegistryLookup
    ) -> None:
        """echo-1 answers 503: callers still get 200s, and echo-1 sees no more than the breaker allows."""
        await wait_until_members(lookup, set(echoes), within=5.0)
        config = ServiceClientConfig(
            breaker=BreakerConfig.consecutive_failures(3, open_duration=30.0),
            retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01),
            retry_budget_min_per_second=100.0,
        )
        async with httpx.AsyncClient() as admin, ServiceClient("echo", lookup, config=config) as client:
            await admin.put(f"{echoes['echo-1'].url}/admin/faults", json={"status": 503})
            statuses = [(await client.get("/echo")).status_code for _ in range(30)]
            served = (await admin.get(f"{echoes['echo-1'].url}/admin/stats")).json()["served"]
        assert statuses == [200] * 30
        assert client.breaker("echo-1").state is BreakerState.OPEN
        assert served == 3

    @pytest.mark.behaviour("client.timeouts")
    async def test_timeout_against_a_slow_instance_moves_on(
        self, echoes: dict[str, ServiceProcess], lookup: RegistryLookup
    ) -> None:
        """echo-2 answers after 2 s: the 0.2 s attempt timeout fires and another instance answers."""
        await wait_until_members(lookup, set(echoes), within=5.0)
        config = ServiceClientConfig(attempt_timeout=0.2, retry=RetryPolicy(base_delay=0.001, max_delay=0.01))
        async with httpx.AsyncClient() as admin, ServiceClient("echo", lookup, config=config) as client:
            await admin.put(f"{echoes['echo-2'].url}/admin/faults", json={"delay": 2.0})
            answers = [(await client.get("/echo")).json()["instance"] for _ in range(3)]
            await admin.put(f"{echoes['echo-2'].url}/admin/faults", json={})
            timeouts = client.metrics.registry.get_sample_value(
                "harness_client_calls_total", {"service": "echo", "instance": "echo-2", "outcome": "timeout"}
            )
        assert "echo-2" not in answers
        assert timeouts == 1.0
