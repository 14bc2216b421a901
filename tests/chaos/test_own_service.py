"""Chaos on a service of your own (the inventory example): its experiment holds as shipped and deviates,
with its reason, when health checks cross the fault proxy; a fault schedule addresses its instances by
name (a toxic on one, a kill of the other) and leaves both running and listed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.chaos import ChaosOutcome, run_chaos
from harness.events import EventLog
from harness.faults import FaultApplier, FaultKind, FaultSchedule, FaultSpec, FaultWindow, ScheduleRunner
from harness.stack import Stack, load_topology
from harness.stack._faults import StackInjector
from harness.timeline import build_timeline

ROOT = Path(__file__).parents[2]
EXPERIMENT = ROOT / "chaos_experiments" / "10-own-service-latency.json"
EXAMPLE = ROOT / "examples" / "inventory" / "topology.toml"


def run(stack: Stack, report: Path, *, fail_fast: bool = False) -> ChaosOutcome:
    outcome = run_chaos(
        EXPERIMENT, report_dir=report, stack=stack, fail_fast=fail_fast, seed=7, progress=print
    )
    journal = json.loads(outcome.journal_path.read_text())
    for expectation in journal["harness"]["expectations"]:
        print(f"  {expectation['probe']}: {expectation['output']!r} (tolerance {expectation['tolerance']!r})")
    print(f"exit {outcome.exit_code}: {outcome.verdict}")
    return outcome


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(load_topology(EXAMPLE), tmp_path_factory.mktemp("inventory")) as stack:
        yield stack


def listed(stack: Stack) -> set[str]:
    answer = httpx.get(f"{stack.registry_url}/v1/services/inventory/instances", trust_env=False)
    return {i["instance_id"] for i in answer.json()["instances"]}


@pytest.mark.behaviour("experiment.own_service_latency", "harness.own_services", "toxic.latency")
def test_the_own_service_experiment_holds_as_shipped(inventory: Stack, tmp_path: Path) -> None:
    """Both instances listed before, after and after cleanup; latency where the toxic is and nowhere else."""
    outcome = run(inventory, tmp_path / "report")
    assert outcome.exit_code == 0, outcome.verdict
    assert outcome.left_behind == []
    assert inventory.toxiproxy is not None
    assert all(not proxy.toxics() for proxy in inventory.toxiproxy.proxies().values())


@pytest.mark.behaviour("registry.health_check_eviction", "harness.own_services")
def test_with_health_checks_through_the_proxy_the_slow_instance_is_evicted(tmp_path: Path) -> None:
    """``checks_through_proxy = true`` (a full partition's setting) with a check timeout under the latency:
    the registry's checks time out and drop inventory-2, which the experiment says must not happen."""
    topology = load_topology(EXAMPLE)
    through = topology.model_copy(update={"registry": topology.registry.model_copy(
        update={"checks_through_proxy": True})})  # fmt: skip
    with Stack(through, tmp_path / "stack") as stack:
        outcome = run(stack, tmp_path / "report", fail_fast=True)
    assert outcome.exit_code == 1, outcome.verdict
    journal = json.loads(outcome.journal_path.read_text())
    failed = [e["probe"] for e in journal["harness"]["expectations"] if not e["held"]]
    assert failed[:1] == ["inventory-2 is still listed while slow"]
    assert failed[0] in outcome.verdict


@pytest.mark.behaviour("harness.fault_schedule", "harness.own_services")
def test_a_fault_schedule_addresses_own_instances_by_name(inventory: Stack, tmp_path: Path) -> None:
    """Latency on inventory-2 and a kill of inventory-1, as events on the timeline; both removed at the end:
    inventory-1 restarted on its port and listed again, no toxic left."""
    events = EventLog("harness-test", inventory.event_log("harness-test"))
    schedule = FaultSchedule(windows=[
        FaultWindow(name="slow", fault=FaultSpec(kind=FaultKind.LATENCY, instance="inventory-2",
                                                 attributes={"latency": 100}), start=0.0, end=0.5),
        FaultWindow(name="crash", fault=FaultSpec(kind=FaultKind.KILL, instance="inventory-1"),
                    start=0.1, end=0.6),
    ])  # fmt: skip
    port = inventory.processes["inventory-1"].port
    runner = ScheduleRunner(schedule, FaultApplier(StackInjector(inventory), events))
    runner.run()
    events.close()
    assert runner.failures == []
    spans = {(s.window, s.instance) for s in build_timeline([inventory.event_log("harness-test")]).faults()}
    assert spans == {("slow", "inventory-2"), ("crash", "inventory-1")}
    assert inventory.processes["inventory-1"].is_running()
    assert inventory.processes["inventory-1"].port == port
    assert inventory.toxiproxy is not None
    assert inventory.toxiproxy.toxics("inventory-2") == []
    httpx.get(f"{inventory.proxied_url('inventory-1')}/healthz", trust_env=False).raise_for_status()
