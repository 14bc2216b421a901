"""Faults on the whole stack: every call between services crosses a proxy, so a toxic hits one instance."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.checks import check_saga_invariants, collect_saga_snapshot
from harness.events import read_events
from harness.stack import Stack, fast_topology

FAST = fast_topology()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(FAST, tmp_path_factory.mktemp("chaos-stack")) as running:
        yield running


@pytest.fixture(autouse=True)
def no_toxic_left(stack: Stack) -> Iterator[None]:
    """Each test starts and ends with every proxy enabled and free of toxics."""
    assert stack.toxiproxy is not None
    stack.toxiproxy.reset()
    yield
    stack.toxiproxy.reset()
    assert all(not proxy.toxics() for proxy in stack.toxiproxy.proxies().values())


def median_get(url: str, n: int = 9) -> float:
    timings = []
    with httpx.Client(timeout=10.0) as http:
        for _ in range(n):
            began = time.perf_counter()
            http.get(url).raise_for_status()
            timings.append(time.perf_counter() - began)
    return sorted(timings)[n // 2]


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def failed_attempts(text: str, instance: str) -> float:
    """Attempts the orchestrator's users client sent to ``instance`` that got no 2xx."""
    every = metric(text, "harness_client_calls_total", service="users", instance=instance)
    return every - metric(text, "harness_client_calls_total", service="users", instance=instance,
                          outcome="status_2xx")  # fmt: skip


class TestRouting:
    @pytest.mark.behaviour("registry.registration")
    def test_instances_register_their_proxy_address(self, stack: Stack) -> None:
        """The registry hands out proxy addresses, so discovered traffic crosses the proxies."""
        listed = httpx.get(f"{stack.registry_url}/v1/services/users/instances").json()["instances"]
        assert {f"{i['address']}:{i['port']}" for i in listed} == {
            stack.proxies[name] for name in ("users-1", "users-2", "users-3")}  # fmt: skip

    @pytest.mark.behaviour("toxic.latency")
    def test_latency_on_users_2_slows_only_users_2(self, stack: Stack) -> None:
        """200 ms latency on users-2's proxy: users-2 through it slows; users-1, and users-2 direct, don't."""
        assert stack.toxiproxy is not None
        user = f"u-{uuid.uuid4().hex[:8]}"
        httpx.post(f"{stack.url('users-1')}/users",
                   json={"id": user, "name": "N", "email": "n@example.test"}).raise_for_status()  # fmt: skip
        with stack.toxiproxy.proxy("users-2").toxic("latency", latency=200):
            slowed = median_get(f"{stack.proxied_url('users-2')}/users/{user}")
            other = median_get(f"{stack.proxied_url('users-1')}/users/{user}")
            direct = median_get(f"{stack.url('users-2')}/users/{user}")
        assert slowed >= 0.2
        assert other < 0.1
        assert direct < 0.1
        assert median_get(f"{stack.proxied_url('users-2')}/users/{user}") < 0.1


@pytest.mark.behaviour(
    "retry.only_when_safe", "balancer.skips_open_breakers", "saga.completes", "toxic.reset_peer"
)
class TestSagaUnderFaults:
    def test_orders_complete_while_users_2_resets_every_connection(self, stack: Stack) -> None:
        """reset_peer on users-2: the orchestrator retries elsewhere, and users-2 is shielded from calls."""
        assert stack.toxiproxy is not None
        orchestrator = stack.url("orchestrator-1")
        user = f"u-{uuid.uuid4().hex[:8]}"
        body = {"id": user, "name": "N", "email": "n@example.test", "credit": 10_000}
        httpx.post(f"{stack.url('users-1')}/users", json=body).raise_for_status()
        before = httpx.get(f"{orchestrator}/metrics").text
        with stack.toxiproxy.proxy("users-2").toxic("reset_peer", stream="upstream", timeout=0):
            states = [
                httpx.post(f"{orchestrator}/orders", json={"user_id": user, "amount": 10},
                           headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=30.0).json()["state"]
                for _ in range(30)
            ]  # fmt: skip
        after = httpx.get(f"{orchestrator}/metrics").text
        assert states == ["COMPLETED"] * 30
        assert failed_attempts(after, "users-2") - failed_attempts(before, "users-2") > 0
        for healthy in ("users-1", "users-3"):
            assert failed_attempts(after, healthy) == failed_attempts(before, healthy)
        # Shielded by its breaker opening, or by the registry's health checks (they cross the proxy too).
        events = read_events(stack.event_log("orchestrator-1"))
        assert any(
            (
                e["event"] == "client.breaker_transition"
                and e["instance"] == "users-2"
                and e["to_state"] == "open"
            )
            or (e["event"] == "discovery.membership_changed" and "users-2" in e["removed"])
            for e in events
        )
        snapshot = collect_saga_snapshot(orchestrator, stack.url("users-1"), stack.url("notifications-1"))
        assert check_saga_invariants(snapshot) == []
