"""Services of your own under the stack: started on a free port behind a fault proxy, registered by the
stack's agent (heartbeats only while their health check passes), shown in the state file, killed and
restarted by name; external instances proxied and registered but never started or stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.errors import ConfigError, ServiceStartError
from harness.stack import OwnServiceTopology, Stack, Topology, load_topology, read_status
from harness.stack._state import Origin
from harness.stack._topology import SERVICE_KINDS, RegistryTopology, ServiceTopology

from .conftest import HealthTarget

EXAMPLE = Path(__file__).parents[2] / "examples" / "inventory" / "topology.toml"
FAST = RegistryTopology(ttl=1.0, check_interval=0.2, check_timeout=0.3, check_failures=2)
NO_REFERENCE = {kind: ServiceTopology(instances=0) for kind in SERVICE_KINDS}


def instances(stack: Stack, service: str) -> dict[str, dict[str, Any]]:
    """What the registry lists as healthy instances of ``service``, by id."""
    answer = httpx.get(f"{stack.registry_url}/v1/services/{service}/instances", trust_env=False)
    return {i["instance_id"]: i for i in answer.json()["instances"]}


def until(predicate: Any, *, within: float, what: str) -> float:
    """Poll ``predicate`` until true; the seconds it took, or an AssertionError after ``within``."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > within:
            raise AssertionError(f"{what} did not happen within {within:g}s")
        time.sleep(0.05)
    return time.monotonic() - began


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The example's two inventory instances, with fast registry timings."""
    topology = load_topology(EXAMPLE).model_copy(update={"registry": FAST})
    with Stack(topology, tmp_path_factory.mktemp("inventory")) as stack:
        yield stack


@pytest.mark.behaviour("harness.own_services")
class TestAnOwnCommand:
    def test_each_instance_is_registered_behind_its_proxy_with_a_direct_health_check(
        self, inventory: Stack
    ) -> None:
        """Registered address: the proxy's; health URL: the instance's own port; weights as the file says."""
        listed = instances(inventory, "inventory")
        assert set(listed) == {"inventory-1", "inventory-2"}
        for name, weight in (("inventory-1", 1), ("inventory-2", 3)):
            assert f"{listed[name]['address']}:{listed[name]['port']}" == inventory.proxies[name]
            assert listed[name]["health_url"] == f"{inventory.url(name)}/healthz"
            assert listed[name]["weight"] == weight

    def test_it_runs_with_its_environment_and_answers_through_its_proxy(self, inventory: Stack) -> None:
        """{instance} and {workdir} are filled: each instance names itself and shares the database file."""
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            http.put(
                f"{inventory.proxied_url('inventory-1')}/items/bolt", json={"stock": 9}
            ).raise_for_status()
            answer = http.get(f"{inventory.proxied_url('inventory-2')}/items/bolt").json()
        assert answer == {"sku": "bolt", "stock": 9, "instance": "inventory-2"}
        assert (inventory.workdir / "inventory.db").exists()

    def test_the_state_file_lists_it_as_an_own_process(self, inventory: Stack) -> None:
        own = {s.name: s for s in read_status(inventory.workdir) if s.kind == "inventory"}
        assert {name: (s.origin, s.health) for name, s in own.items()} == {
            "inventory-1": (Origin.OWN, "ok"),
            "inventory-2": (Origin.OWN, "ok"),
        }

    def test_killed_it_leaves_the_registry_restarted_it_comes_back_on_its_port(
        self, inventory: Stack
    ) -> None:
        """The agent stops heartbeating while its health check fails; after a restart it registers again."""
        port = inventory.processes["inventory-2"].port
        inventory.kill("inventory-2")
        gone = until(
            lambda: "inventory-2" not in instances(inventory, "inventory"), within=5.0, what="eviction"
        )
        inventory.restart("inventory-2")
        back = until(lambda: "inventory-2" in instances(inventory, "inventory"), within=5.0, what="return")
        print(
            f"evicted after {gone:.2f}s (bound 5), registered again {back:.2f}s after the restart (bound 5)"
        )
        assert inventory.processes["inventory-2"].port == port


@pytest.mark.behaviour("harness.own_services")
class TestTheAgent:
    def test_it_heartbeats_only_while_the_instance_is_healthy(
        self, tmp_path: Path, health_target: HealthTarget
    ) -> None:
        """TTL only (no registry checks): a 503 from the instance's health path stops the heartbeats, so the
        registry lets it expire; 200 again and it is registered again. On stop it is deregistered."""
        base = health_target.url.removesuffix("/health")
        ttl_only = RegistryTopology(ttl=1.0, check_interval=0.2, health_checks=False)
        legacy = OwnServiceTopology(external=[base], heartbeat_interval=0.2)
        topology = Topology(registry=ttl_only, services={**NO_REFERENCE, "legacy": legacy}, proxies=False)
        with Stack(topology, tmp_path) as stack:
            assert set(instances(stack, "legacy")) == {"legacy-1"}
            health_target.status = 503
            expired = until(lambda: not instances(stack, "legacy"), within=5.0, what="expiry")
            health_target.status = 200
            until(lambda: bool(instances(stack, "legacy")), within=5.0, what="registration")
        print(f"expired {expired:.2f}s after the health check failed (TTL 1.0 s, bound 5)")
        assert expired >= 0.5  # it waited for the TTL: nobody deregistered it

        events = (tmp_path / "events" / "harness.jsonl").read_text()
        order = [e for e in ("agent.registered", "agent.instance_unhealthy", "agent.reregistered",
                             "agent.deregistered") if e in events]  # fmt: skip
        assert order == ["agent.registered", "agent.instance_unhealthy", "agent.reregistered",
                         "agent.deregistered"]  # fmt: skip


@pytest.mark.behaviour("harness.own_services")
class TestExternal:
    def test_it_is_proxied_registered_and_left_running(
        self, tmp_path: Path, health_target: HealthTarget
    ) -> None:
        """Its proxy forwards to it; the registry lists the proxy; kill and restart are refused; stop leaves
        it answering."""
        base = health_target.url.removesuffix("/health")
        topology = Topology(
            registry=FAST, services={**NO_REFERENCE, "legacy": OwnServiceTopology(external=[base])}
        )
        with Stack(topology, tmp_path) as stack:
            listed = instances(stack, "legacy")["legacy-1"]
            assert f"{listed['address']}:{listed['port']}" == stack.proxies["legacy-1"]
            assert httpx.get(f"{stack.proxied_url('legacy-1')}/health", trust_env=False).status_code == 200
            assert [
                (s.name, s.origin, s.pid, s.health) for s in read_status(tmp_path) if s.kind == "legacy"
            ] == [("legacy-1", Origin.EXTERNAL, None, "ok")]
            with pytest.raises(ConfigError, match="external"):
                stack.kill("legacy-1")
            with pytest.raises(ConfigError, match="external"):
                stack.restart("legacy-1")
        assert httpx.get(health_target.url, trust_env=False).status_code == 200

    def test_one_that_does_not_answer_fails_the_start_naming_it(self, tmp_path: Path) -> None:
        dead = OwnServiceTopology(external=["http://127.0.0.1:9"])
        topology = Topology(registry=FAST, services={**NO_REFERENCE, "legacy": dead}, startup_timeout=1.0)
        with pytest.raises(Exception, match=r"legacy-1 \(external, http://127\.0\.0\.1:9\) did not answer"):
            Stack(topology, tmp_path).start()
        assert not (tmp_path / "stack.json").exists()


@pytest.mark.behaviour("harness.own_services")
def test_a_command_that_cannot_run_is_a_start_error_naming_it(tmp_path: Path) -> None:
    broken = OwnServiceTopology(command=["./no-such-program", "{port}"], cwd=str(tmp_path))
    topology = Topology(registry=FAST, services={**NO_REFERENCE, "broken": broken}, proxies=False)
    with pytest.raises(ServiceStartError, match=r"broken-1: cannot run './no-such-program'"):
        Stack(topology, tmp_path / "stack").start()
