"""The experiment catalogue, each file twice: as shipped it holds; against a configuration a user could
legitimately have that breaks the resilience it checks, it deviates, with the reason in its journal. A
harsh configuration the resilience must survive (no client retries for the saga) holds too.

The passing runs share one stack with fast timings; the deviating runs share a stack per configuration
and stop at their first failing probe. Each run's figures are printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.chaos import ChaosOutcome, run_chaos
from harness.settings import BreakerSettings, ClientSettings, DiscoverySettings, RetrySettings
from harness.stack import Stack, Topology
from harness.stack._topology import RegistryTopology, ServiceTopology
from harness.testing import require_conclusive

CATALOGUE = Path(__file__).parents[2] / "chaos_experiments"
FAST_REGISTRY = RegistryTopology(ttl=1.5, check_interval=0.5, check_timeout=0.5, check_failures=2)
FAST_BREAKER = BreakerSettings(window_size=10, minimum_calls=5, failure_rate_threshold=0.5, open_duration=0.5)


def topology(
    *, users_client: ClientSettings | None = None, notifications_client: ClientSettings | None = None,
    registry: RegistryTopology = FAST_REGISTRY, heartbeat: float = 0.3,
    orchestrator: dict[str, int | float] | None = None,
) -> Topology:  # fmt: skip
    client = ClientSettings(breaker=FAST_BREAKER, attempt_timeout=1.0, deadline=3.0)
    return Topology(
        registry=registry,
        services={
            "users": ServiceTopology(instances=3, heartbeat_interval=heartbeat),
            "notifications": ServiceTopology(instances=1, heartbeat_interval=heartbeat),
            "orchestrator": ServiceTopology(
                instances=1,
                heartbeat_interval=heartbeat,
                clients={"users": users_client or client, "notifications": notifications_client or client},
                options=dict(orchestrator or {}),
            ),
        },
    )


def run(stack: Stack, name: str, report: Path, *, fail_fast: bool = False) -> ChaosOutcome:
    [path] = CATALOGUE.glob(f"{name}-*.json")
    outcome = run_chaos(path, report_dir=report, stack=stack, fail_fast=fail_fast, seed=7, progress=print)
    journal = json.loads(outcome.journal_path.read_text())
    for conformance in journal["harness"]["conformance"]:
        for figure in conformance["figures"]:
            print(
                f"  {conformance['instance']}: {figure['name']}: {figure['measured']} "
                f"(bound {figure['bound']})"
            )
    for expectation in journal["harness"]["expectations"]:
        print(f"  {expectation['probe']}: {expectation['output']!r} (tolerance {expectation['tolerance']!r})")
        for line in expectation.get("evidence", []):
            print(f"    evidence: {line}")
    print(f"exit {outcome.exit_code}: {outcome.verdict}")
    require_conclusive(outcome.exit_code, outcome.verdict)
    return outcome


def unmet(outcome: ChaosOutcome) -> list[str]:
    journal = json.loads(outcome.journal_path.read_text())
    return [e["probe"] for e in journal["harness"]["expectations"] if not e["held"]]


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(topology(), tmp_path_factory.mktemp("fast")) as stack:
        yield stack


def misconfigured(tmp_path: Path, **changes: object) -> Stack:
    return Stack(topology(**changes), tmp_path / "stack")  # type: ignore[arg-type]


@pytest.mark.behaviour(
    by_id={
        "01": [
            "experiment.latency_on_one_users_instance",
            "breaker.opens",
            "breaker.rejects_while_open",
            "breaker.half_open_probes",
            "breaker.closes",
            "balancer.skips_open_breakers",
            "toxic.latency",
            "client.timeouts",
        ],
        "02": [
            "experiment.reset_peer_on_one_users_instance",
            "breaker.opens",
            "breaker.closes",
            "retry.only_when_safe",
            "balancer.skips_open_breakers",
            "toxic.reset_peer",
        ],
        "03": [
            "experiment.hung_users_instance",
            "client.timeouts",
            "breaker.opens",
            "breaker.closes",
            "toxic.timeout",
        ],
        "04": [
            "experiment.users_instance_killed",
            "registry.health_check_eviction",
            "discovery.follows_membership",
            "registry.registration",
        ],
        "05": [
            "experiment.registry_cut_off_and_killed",
            "discovery.cache_through_outage",
            "registry.registration",
        ],
        "06": ["experiment.orchestrator_killed_mid_saga", "saga.crash_recovery", "saga.invariants"],
        "07": ["experiment.bandwidth_and_slicer", "toxic.bandwidth", "toxic.slicer"],
        "08": ["experiment.reset_peer_per_connection", "toxic.toxicity", "toxic.reset_peer"],
        "09": [
            "experiment.notifications_down_during_orders",
            "saga.pivot_rule",
            "saga.bounded_retries",
            "saga.invariants",
        ],
    }
)
@pytest.mark.parametrize("name", [f"{n:02d}" for n in range(1, 10)])
def test_each_experiment_holds_as_shipped(fast_stack: Stack, tmp_path: Path, name: str) -> None:
    """Hypothesis before, after and after cleanup; every method probe within its tolerance; nothing left."""
    outcome = run(fast_stack, name, tmp_path / "report")
    assert outcome.exit_code == 0, outcome.verdict
    assert outcome.left_behind == []
    assert outcome.report_path is not None
    assert outcome.report_path.exists()
    assert all(p.is_running() for p in fast_stack.processes.values())


def assert_deviates(outcome: ChaosOutcome, *because: str) -> None:
    """Exit 1, and the first probe that did not hold is one of ``because`` (named in the verdict)."""
    assert outcome.exit_code == 1, outcome.verdict
    journal = json.loads(outcome.journal_path.read_text())
    assert (journal["status"], journal["harness"]["verdict"]) == ("failed", "deviated")  # as `chaos run` says
    failed = unmet(outcome)
    assert failed, "deviated without a failed probe"
    assert failed[0] in because, failed
    assert failed[0] in outcome.verdict


class TestWrongConfigurationsDeviate:
    @pytest.mark.behaviour(
        "client.configuration",
        "experiment.latency_on_one_users_instance",
        "experiment.reset_peer_on_one_users_instance",
        "experiment.hung_users_instance",
    )
    def test_without_breakers_the_breaker_experiments_deviate(self, tmp_path: Path) -> None:
        """breaker = false towards users: the breaker conformance probe fails on every breaker experiment."""
        off = ClientSettings(breaker=None, attempt_timeout=1.0, deadline=3.0)
        with misconfigured(tmp_path, users_client=off) as stack:
            outcomes = {
                name: run(stack, name, tmp_path / name, fail_fast=True) for name in ("01", "02", "03")
            }
        for outcome in outcomes.values():
            assert_deviates(outcome, "the breaker towards users-2 conforms")

    @pytest.mark.behaviour("discovery.follows_membership", "experiment.users_instance_killed")
    def test_with_a_discovery_cache_that_never_refreshes_calls_go_on_to_a_dead_instance(
        self, tmp_path: Path
    ) -> None:
        frozen = ClientSettings(breaker=FAST_BREAKER, attempt_timeout=1.0, deadline=3.0,
                                discovery=DiscoverySettings(watch=False, refresh_interval=0))  # fmt: skip
        with misconfigured(tmp_path, users_client=frozen) as stack:
            outcome = run(stack, "04", tmp_path / "report", fail_fast=True)
        assert_deviates(outcome, "calls to users-2 after its eviction and one cache refresh")

    @pytest.mark.behaviour("registry.registration", "experiment.registry_cut_off_and_killed")
    def test_with_slow_heartbeats_a_restarted_registry_stays_empty_too_long(self, tmp_path: Path) -> None:
        """Heartbeats every 20 s (TTL 60 s): after the registry restarts empty, callers are told there is
        no instance until the heartbeats come, and orders fail meanwhile."""
        slow = RegistryTopology(ttl=60.0, check_interval=0.5, check_timeout=0.5, check_failures=2)
        with misconfigured(tmp_path, registry=slow, heartbeat=20.0) as stack:
            outcome = run(stack, "05", tmp_path / "report", fail_fast=True)
        assert_deviates(outcome, "users-1 registered again", "notifications-1 registered again",
                        "orders that failed")  # fmt: skip

    @pytest.mark.behaviour("client.timeouts", "experiment.bandwidth_and_slicer")
    def test_with_a_too_short_attempt_timeout_slow_links_fail_orders(self, tmp_path: Path) -> None:
        """Attempts of 20 ms over slow links get no answer, and with a step deadline shorter than one
        attempt the saga cannot retry on another instance: the credit is never reserved, the order is
        compensated and fails."""
        tight = ClientSettings(breaker=FAST_BREAKER, attempt_timeout=0.02, deadline=0.1)
        with misconfigured(tmp_path, users_client=tight, orchestrator={"step_deadline": 0.01}) as stack:
            outcome = run(stack, "07", tmp_path / "report", fail_fast=True)
        assert_deviates(outcome, "orders that failed while the links were bad")

    @pytest.mark.behaviour("toxic.toxicity", "experiment.reset_peer_per_connection")
    def test_without_keep_alive_the_pooled_client_sees_every_draw(
        self, fast_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HARNESS_POOLED_KEEPALIVE", "false")
        outcome = run(fast_stack, "08", tmp_path / "report", fail_fast=True)
        assert_deviates(outcome, "error share through a keep-alive pool")


class TestHarshConfigurationsHold:
    @pytest.mark.behaviour(
        "saga.bounded_retries", "saga.pivot_rule", "experiment.notifications_down_during_orders"
    )
    def test_without_client_retries_no_saga_stops_when_notifications_are_cut_off(
        self, tmp_path: Path
    ) -> None:
        """No client retries, one-second attempts, a half-second step deadline: each notify that meets the
        partition fails to deliver, and a failure to deliver is retried until done after the pivot, never
        a reason to stop. (With sagas bounded by a count of attempts this run left orders needing
        attention.)"""
        once = ClientSettings(breaker=FAST_BREAKER, attempt_timeout=1.0, deadline=3.0,
                              retry=RetrySettings(max_attempts=1))  # fmt: skip
        with misconfigured(tmp_path, users_client=once, notifications_client=once,
                           orchestrator={"step_deadline": 0.5}) as stack:  # fmt: skip
            outcome = run(stack, "09", tmp_path / "report")
        assert outcome.exit_code == 0, (outcome.verdict, unmet(outcome))
