"""The topology configures real instances: weights and balancer, a client without breaker, TTL-only instances.

Each test starts a small stack with fast timings from a topology file, drives orders through the
orchestrator, and reads what happened from the orchestrator's ``client.attempt`` events (the timeline).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.stack import Stack, load_topology
from harness.stack._orders import place_orders
from harness.timeline import CallAttempt, OtherEvent, build_timeline

REGISTRY = """
[registry]
ttl = 2.0
check_interval = 0.5
check_timeout = 0.5
check_failures = 2
"""
SAGA = """
[services.notifications]
heartbeat_interval = 0.5
[services.orchestrator]
heartbeat_interval = 0.5
"""


def stack_from(tmp_path: Path, text: str, *, proxies: bool = True) -> Stack:
    """A stack from a topology file holding ``text``; proxies off where no fault is needed (faster)."""
    path = tmp_path / "topology.toml"
    path.write_text(text)
    topology = load_topology(path).model_copy(update={"proxies": proxies})
    return Stack(topology, tmp_path / "run")


def attempts_to_users(stack: Stack) -> list[CallAttempt]:
    """The orchestrator's attempts towards users, in time order."""
    timeline = build_timeline([stack.event_log("orchestrator-1")])
    return [e for e in timeline.events if isinstance(e, CallAttempt) and e.service == "users"]


@pytest.fixture
def weighted(tmp_path: Path) -> Iterator[Stack]:
    text = (
        REGISTRY
        + SAGA
        + """
[services.users]
heartbeat_interval = 0.5
weight = [1, 1, 2]
[services.orchestrator.clients.users]
balancer = "weighted_round_robin"
"""
    )
    with stack_from(tmp_path, text, proxies=False) as stack:
        yield stack


@pytest.mark.behaviour("balancer.weights", "client.configuration")
class TestWeights:
    def test_weighted_round_robin_follows_the_topologys_weights(self, weighted: Stack) -> None:
        """weight = [1, 1, 2]: the orchestrator sends users-3 half its users calls, the others a quarter."""
        placed = place_orders(weighted, 20, amount=1)
        assert {order.state for order in placed} == {"COMPLETED"}
        counts = Counter(attempt.instance for attempt in attempts_to_users(weighted))
        total = sum(counts.values())
        shares = {name: round(counts[name] / total, 3) for name in ("users-1", "users-2", "users-3")}
        print(f"shares over {total} attempts: {shares} (expected 0.25, 0.25, 0.5 within 0.05)")
        assert total >= 40
        for name, expected in (("users-1", 0.25), ("users-2", 0.25), ("users-3", 0.5)):
            assert shares[name] == pytest.approx(expected, abs=0.05), shares


@pytest.fixture(scope="class")
def breakerless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A generous retry budget so every order still completes through the healthy instances.
    text = (
        REGISTRY
        + SAGA
        + """
[services.users]
heartbeat_interval = 0.5
[services.orchestrator.clients.users]
breaker = false
retry_budget = { ratio = 1.0 }
attempt_timeout = 1.5
deadline = 4.5
"""
    )
    with stack_from(tmp_path_factory.mktemp("breakerless"), text) as stack:
        yield stack


@pytest.mark.behaviour("client.configuration")
class TestBreakerOff:
    def test_a_failing_instance_keeps_getting_calls(self, breakerless: Stack) -> None:
        """breaker = false, users-2's proxy down: it keeps getting its round-robin turn until the end."""
        assert breakerless.toxiproxy is not None
        with breakerless.toxiproxy.proxy("users-2").down():
            placed = place_orders(breakerless, 30, amount=1)
        assert {order.state for order in placed} == {"COMPLETED"}
        attempts = attempts_to_users(breakerless)
        failing = [a for a in attempts if a.instance == "users-2"]
        late = [a for a in failing if a.mono >= attempts[len(attempts) // 2].mono]
        print(f"users-2: {len(failing)} failed attempts of {len(attempts)}, {len(late)} in the second half "
              "(a breaker of 10 minimum calls, open 2 s, would allow about 10 and 1)")  # fmt: skip
        assert {a.outcome for a in failing} == {"connect_error"}
        assert {a.admitted for a in failing} == {"off"}
        assert len(failing) >= 15
        assert len(late) >= 5
        timeline = build_timeline([breakerless.event_log("orchestrator-1")])
        assert [e for e in timeline.events if e.event == "client.breaker_transition"] == []

    def test_the_instance_runs_with_the_topologys_client_table(self, breakerless: Stack) -> None:
        """The orchestrator's users client reports the table's breaker and timeouts, not the defaults."""
        timeline = build_timeline([breakerless.event_log("orchestrator-1")])
        configured = [
            e.fields for e in timeline.events if isinstance(e, OtherEvent) and e.event == "client.configured"
        ]
        users = [fields for fields in configured if fields["service"] == "users"]
        assert len(users) == 1
        assert (users[0]["breaker"], users[0]["attempt_timeout"], users[0]["deadline"]) == ("off", 1.5, 4.5)


@pytest.fixture
def ttl_only(tmp_path: Path) -> Iterator[Stack]:
    text = (
        REGISTRY
        + """health_checks = false
[services.users]
instances = 2
heartbeat_interval = 0.5
[services.notifications]
instances = 0
[services.orchestrator]
instances = 0
"""
    )
    with stack_from(tmp_path, text, proxies=False) as stack:
        yield stack


@pytest.mark.behaviour("registry.registration")
class TestHealthChecksOff:
    def test_instances_register_without_a_health_url(self, ttl_only: Stack) -> None:
        """[registry] health_checks = false: instances register no health URL and are listed as passing."""
        answer = httpx.get(
            f"{ttl_only.registry_url}/v1/services/users/instances", timeout=5.0, trust_env=False
        )
        instances = answer.json()["instances"]
        assert [i["instance_id"] for i in instances] == ["users-1", "users-2"]
        assert {i["health_url"] for i in instances} == {None}
        assert {i["status"] for i in instances} == {"passing"}
