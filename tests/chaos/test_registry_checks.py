"""The registry inside the stack: health checks bypass the fault proxies unless the topology routes them
through, and only holders of the run's token may change membership."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from harness.events import read_events
from harness.stack import Stack, Topology
from harness.stack._topology import RegistryTopology, ServiceTopology

CHECKS = RegistryTopology(ttl=2.0, check_interval=0.2, check_timeout=0.3, check_failures=2)
ONE_USERS = {
    "users": ServiceTopology(instances=1, heartbeat_interval=0.2),
    "notifications": ServiceTopology(instances=0),
    "orchestrator": ServiceTopology(instances=0),
}
REGISTRY_ONLY = {**ONE_USERS, "users": ServiceTopology(instances=0)}
SLOW = 1000  # ms of latency on the proxy: far beyond the 0.3 s check timeout


def start(workdir: Path, *, through_proxy: bool) -> Stack:
    registry = CHECKS.model_copy(update={"checks_through_proxy": through_proxy})
    return Stack(Topology(registry=registry, services=ONE_USERS), workdir).start()


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[Stack]:
    stack = start(tmp_path, through_proxy=False)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def through_proxy(tmp_path: Path) -> Iterator[Stack]:
    stack = start(tmp_path, through_proxy=True)
    try:
        yield stack
    finally:
        stack.stop()


def instance(stack: Stack, name: str) -> httpx.Response:
    return httpx.get(f"{stack.registry_url}/v1/instances/{name}", trust_env=False)


def passing_checks(stack: Stack) -> float:
    text = httpx.get(f"{stack.registry_url}/metrics", trust_env=False).text
    line = next(
        ln for ln in text.splitlines() if ln.startswith('registry_health_checks_total{result="passing"}')
    )
    return float(line.split()[-1])


def wait_for(condition: Callable[[], bool], *, within: float, what: str) -> float:
    """Poll ``condition()`` until true; returns the seconds it took, fails the test after ``within``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > within:
            pytest.fail(f"{what} did not happen within {within:g}s")
        time.sleep(0.02)
    return time.monotonic() - began


def proxied_call_times_out(stack: Stack) -> bool:
    try:
        httpx.get(f"{stack.proxied_url('users-1')}/health", timeout=0.5, trust_env=False)
    except httpx.TimeoutException:
        return True
    return False


@pytest.mark.behaviour("registry.health_check_eviction")
class TestHealthCheckRouting:
    """A toxic on an instance's proxy is the callers' problem, unless the topology says checks cross it."""

    def test_direct_checks_keep_a_slowed_instance_healthy(self, direct: Stack) -> None:
        """Latency on users-1's proxy: callers time out, yet the registry's direct checks keep passing."""
        assert direct.toxiproxy is not None
        view = instance(direct, "users-1").json()
        assert view["health_url"] == f"{direct.url('users-1')}/health"  # the instance's own port
        assert f"{view['address']}:{view['port']}" == direct.proxies["users-1"]  # callers use the proxy
        with direct.toxiproxy.proxy("users-1").toxic("latency", latency=SLOW):
            assert proxied_call_times_out(direct)
            before = passing_checks(direct)
            rounds = CHECKS.check_failures + 2
            wait_for(lambda: passing_checks(direct) >= before + rounds, within=5.0, what=f"{rounds} checks")
            during = instance(direct, "users-1").json()
        assert (during["status"], during["consecutive_failures"]) == ("passing", 0)
        evicted = [e for e in read_events(direct.event_log("registry")) if e["event"] == "registry.evicted"]
        assert evicted == []

    def test_checks_through_proxy_evict_a_slowed_instance(self, through_proxy: Stack) -> None:
        """``checks_through_proxy``: the same toxic fails the checks, and users-1 is evicted (a partition)."""
        assert through_proxy.toxiproxy is not None
        view = instance(through_proxy, "users-1").json()
        assert view["health_url"] == f"{through_proxy.proxied_url('users-1')}/health"
        log = through_proxy.event_log("registry")

        def evicted() -> bool:
            return any(
                e["event"] == "registry.evicted" and e["instance_id"] == "users-1" for e in read_events(log)
            )

        with through_proxy.toxiproxy.proxy("users-1").toxic("latency", latency=SLOW):
            took = wait_for(evicted, within=5.0, what="eviction of users-1")
            listed = httpx.get(f"{through_proxy.registry_url}/v1/services/users/instances", trust_env=False)
        bound = CHECKS.check_failures * CHECKS.check_interval + CHECKS.check_timeout + 1.0
        print(f"users-1 evicted {took:.2f}s after the toxic (bound {bound:.2f}s)")
        assert took <= bound
        assert listed.json()["instances"] == []


@pytest.mark.behaviour("registry.write_token")
class TestStackToken:
    """`harness up` (a Stack) makes a token per run; its services use it and nobody else can write."""

    def test_services_register_with_the_runs_token_and_others_are_refused(self, direct: Stack) -> None:
        token_file = direct.workdir / "registry.token"
        token = token_file.read_text().strip()
        fake = {"service": "users", "address": "127.0.0.1", "port": 9}

        refused = httpx.put(f"{direct.registry_url}/v1/instances/users-fake", json=fake, trust_env=False)
        deregister = httpx.delete(f"{direct.registry_url}/v1/instances/users-1", trust_env=False)

        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert len(token) >= 32
        assert instance(direct, "users-1").json()["status"] == "passing"  # it registered with the token
        assert (refused.status_code, deregister.status_code) == (401, 401)
        assert instance(direct, "users-1").status_code == 200
        assert all(token not in " ".join(p.command()) for p in direct.processes.values())

    def test_each_run_gets_a_new_token(self, tmp_path: Path) -> None:
        tokens = []
        for _ in range(2):
            with Stack(Topology(registry=CHECKS, services=REGISTRY_ONLY, proxies=False), tmp_path):
                tokens.append((tmp_path / "registry.token").read_text())
        assert tokens[0] != tokens[1]
