"""A user's own tests of the inventory service under the harness's pytest plugin (docs/pytest.md).

    pytest examples/inventory/test_inventory.py --harness-topology examples/inventory/topology.toml

(add ``-p harness.pytest_plugin`` where the plugin's entry point is not installed). The stack starts once
for the session: two inventory instances, each behind its own fault proxy, registered by the stack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from harness.discovery import RegistryClient, RegistryLookup, ServiceClient, ServiceClientConfig
from harness.resilience import RetryPolicy
from harness.stack import StackFaults, StackHandle
from harness.timeline import Timeline


def took(http: httpx.Client, url: str) -> float:
    began = time.monotonic()
    http.get(f"{url}/items/widget").raise_for_status()
    return time.monotonic() - began


def test_a_slow_instance_is_slow_through_its_proxy_only(harness_stack: StackHandle) -> None:
    """300 ms on inventory-2: calls through its proxy take that long, inventory-1's do not, none fails."""
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        stock = http.put(f"{harness_stack.proxied_url('inventory-1')}/items/widget", json={"stock": 5})
        stock.raise_for_status()
        with harness_stack.fault("inventory-2", "latency", latency=300):
            slow = took(http, harness_stack.proxied_url("inventory-2"))
            fast = took(http, harness_stack.proxied_url("inventory-1"))
        after = took(http, harness_stack.proxied_url("inventory-2"))
    assert slow >= 0.3 > max(fast, after)


def test_inventory_survives_a_slow_instance(harness_stack: StackHandle) -> None:
    """A client that finds the inventory through the registry, with a 200 ms attempt timeout and retries:
    every call succeeds while inventory-2 is 300 ms slow."""

    async def calls(n: int) -> int:
        config = ServiceClientConfig(attempt_timeout=0.2, retry=RetryPolicy(max_attempts=3, base_delay=0.01),
                                     retry_budget_min_per_second=100.0)  # fmt: skip
        async with RegistryClient(harness_stack.registry_url) as registry:
            lookup = RegistryLookup(registry)
            client = ServiceClient("inventory", lookup, config=config)
            try:
                answers = [await client.get("/items/widget") for _ in range(n)]
            finally:
                await client.aclose()
                await lookup.aclose()
        return sum(answer.status_code == 200 for answer in answers)

    with harness_stack.fault("inventory-2", "latency", latency=300):
        assert asyncio.run(calls(20)) == 20


def test_the_fault_is_on_the_timeline(
    harness_stack: StackHandle, harness_timeline: Callable[[], Timeline]
) -> None:
    """The fault window, by name and instance, as every report and check reads it."""
    with harness_stack.fault("inventory-1", "latency", latency=50) as name:
        pass
    assert [(span.window, span.instance) for span in harness_timeline().faults()] == [(name, "inventory-1")]


def test_a_killed_instance_is_restarted_when_its_fault_ends(
    harness_stack: StackHandle, harness_faults: StackFaults
) -> None:
    """``kill`` is SIGKILL; removing the fault starts the instance again on its port, so its proxy works."""
    with harness_faults.fault("inventory-2", "kill"):
        assert not harness_stack.stack.processes["inventory-2"].is_running()
    with httpx.Client(trust_env=False, timeout=2.0) as http:
        assert http.get(f"{harness_stack.proxied_url('inventory-2')}/healthz").status_code == 200
