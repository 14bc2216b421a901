"""The behaviours the harness promises, as a typed table: the rows of the pyramid's behaviour x level matrix.

Tests declare what they hold with ``@pytest.mark.behaviour("breaker.half_open_probes")``; an id that is not
here fails collection, and a row that no test holds is a hole in the pyramid. Adding a promise means
adding a row here and a test that holds it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.pyramid._errors import UnknownBehaviour

_ID = re.compile(r"[a-z][a-z0-9_]*\.[a-z0-9][a-z0-9_-]*")


class Group(enum.StrEnum):
    """What part of the harness a behaviour belongs to; the matrix is grouped in this order."""

    BREAKER = "breaker"
    BALANCER = "balancer"
    RETRY = "retry"
    CLIENT = "client"
    DISCOVERY = "discovery"
    SAGA = "saga"
    SERVICES = "services"
    CONTRACT = "contract"
    TOXIC = "toxic"
    EXPERIMENT = "experiment"
    LOAD = "load"
    HARNESS = "harness"


@dataclass(frozen=True)
class Behaviour:
    """One promise: ``id`` is what tests name in their marker, ``description`` what the matrix shows."""

    id: str
    group: Group
    description: str

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(
                f"behaviour id {self.id!r} must look like 'area.name' (lower case, digits, _, -)"
            )


def _rows(group: Group, *rows: tuple[str, str]) -> tuple[Behaviour, ...]:
    return tuple(Behaviour(id, group, description) for id, description in rows)


BEHAVIOURS: tuple[Behaviour, ...] = (
    *_rows(
        Group.BREAKER,
        (
            "breaker.opens",
            "opens once minimum_calls are in and the failure rate reaches its threshold",
        ),
        ("breaker.slow_calls", "opens on the slow-call rate; a slow probe reopens it"),
        ("breaker.rejects_while_open", "rejects every call without touching the network for open_duration"),
        (
            "breaker.half_open_probes",
            "half-open admits exactly half_open_calls probes, even concurrently",
        ),
        ("breaker.closes", "closes when every probe succeeds"),
        ("breaker.reopens", "a failed probe opens it again"),
        ("breaker.transition_events", "every transition is an event with its time and reason"),
    ),
    *_rows(
        Group.BALANCER,
        ("balancer.round_robin_shares", "round robin: shares equal within one call"),
        ("balancer.weights", "smooth weighted round robin: shares follow the weights"),
        ("balancer.least_outstanding", "least outstanding requests, power of two choices"),
        ("balancer.random", "random: every instance reachable, reproducible with a seed"),
        ("balancer.skips_open_breakers", "instances whose breaker is open are skipped: the load moves away"),
        (
            "balancer.none_available_fails_fast",
            "no instance available: the call fails at once, clearly",
        ),
    ),
    *_rows(
        Group.RETRY,
        (
            "retry.only_when_safe",
            "only idempotent requests, or ones with an idempotency key, are retried",
        ),
        ("retry.backoff", "exponential backoff with full jitter, attempts bounded"),
        ("retry.budget", "a retry budget caps retries, so retries cannot multiply load"),
        ("retry.retry_after", "Retry-After is honoured; too long a wait hands the response back"),
    ),
    *_rows(
        Group.CLIENT,
        ("client.timeouts", "an attempt timeout and an overall deadline bound every call"),
        ("client.bulkhead", "a bulkhead rejects calls beyond its limit and never leaks a slot"),
        (
            "client.configuration",
            "the topology's client table (balancer, breaker, timeouts) reaches it",
        ),
        (
            "client.chaos_monkey",
            "client-side injected failures and latency (ChaosMonkey)",
        ),
    ),
    *_rows(
        Group.DISCOVERY,
        ("registry.registration", "registration is idempotent per instance id; a graceful stop deregisters"),
        ("registry.ttl_eviction", "an instance that misses heartbeats for its TTL is evicted"),
        ("registry.health_check_eviction", "n failed active health checks in a row evict an instance"),
        (
            "registry.critical_until_checked",
            "a (re-)registered instance is critical until a check passes",
        ),
        ("registry.healthy_lookups", "lookups list healthy instances only, sorted by id"),
        ("registry.blocking_queries", "a blocking query answers as soon as its service changes"),
        ("registry.write_token", "writes need the run's token; reads stay open"),
        ("discovery.follows_membership", "clients see membership changes within one cache refresh"),
        (
            "discovery.cache_through_outage",
            "clients serve the last known list while the registry is down",
        ),
    ),
    *_rows(
        Group.SAGA,
        ("saga.completes", "an order completes: credit reserved and confirmed, the customer told once"),
        ("saga.compensation", "a failure before the pivot compensates every step that was started"),
        ("saga.pivot_rule", "after the pivot only forward recovery: no compensated order was ever notified"),
        (
            "saga.bounded_retries",
            "a failure to deliver is retried with backoff, bounded by the step's deadline before the pivot; "
            "only a refusal its contract defines makes a saga need attention",
        ),
        (
            "saga.crash_recovery",
            "after a crash every unfinished saga is resumed or compensated",
        ),
        ("saga.idempotent_orders", "a retried POST /orders with the same idempotency key creates one order"),
        ("saga.invariants", "the invariant checks name each broken promise (stuck, credit, orphan, doubled)"),
    ),
    *_rows(
        Group.SERVICES,
        (
            "users.idempotent_reservations",
            "a replayed reservation id answers the first; racing replays make one",
        ),
        ("users.credit_rules", "credit is never overbooked; reserve, confirm and release follow their rules"),
        ("outbox.at_least_once", "every event is delivered, through notification outages and crashes"),
        ("outbox.dead_letters", "an event refused outright becomes a dead letter, listed and requeueable"),
        ("notifications.deduplicated", "a redelivered notification is deduplicated: at most one per event"),
        ("services.load_shedding", "a service sheds load beyond its limit with 503 and Retry-After"),
        ("services.bad_input", "bad input is a clear 4xx JSON error, never a 5xx"),
        ("services.persistence", "a service's data survives a restart"),
        (
            "services.schema",
            "fuzzed, every service answers as its OpenAPI says (no 5xx)",
        ),
        ("services.operations", "health, readiness, metrics and event logs of every service"),
    ),
    *_rows(
        Group.CONTRACT,
        ("contract.harness-notifications", "pact: the harness's checks read notifications"),
        ("contract.harness-toxiproxy", "pact: the harness's Toxiproxy client and the fault proxy's API"),
        ("contract.harness-users", "pact: the harness's checks read users and reservations"),
        ("contract.notifications-registry", "pact: notifications registers, heartbeats and deregisters"),
        ("contract.notifications-users", "pact: the user.created message notifications consumes from users"),
        ("contract.orchestrator-notifications", "pact: the saga's notify step and its outcomes"),
        ("contract.orchestrator-registry", "pact: the orchestrator registers and looks its participants up"),
        (
            "contract.orchestrator-users",
            "pact: the saga's reserve, confirm and release steps",
        ),
        ("contract.users-notifications", "pact: the outbox relay's welcome notification and its redelivery"),
        ("contract.users-registry", "pact: users registers, heartbeats and deregisters"),
        (
            "contract.stale_pact",
            "a changed pact fails until the committed file is updated",
        ),
        (
            "contract.broken_provider",
            "a renamed field fails verification, naming interaction and field",
        ),
        ("contract.can_i_deploy", "can-i-deploy answers from the recorded verification results"),
    ),
    *_rows(
        Group.TOXIC,
        ("toxic.latency", "latency: the configured delay (p50 within 2 ms), jitter around it"),
        ("toxic.bandwidth", "bandwidth: the configured rate, within 10%"),
        ("toxic.slow_close", "slow_close: data at once, the close delayed"),
        ("toxic.timeout", "timeout: data held, the connection closed after the timeout (0: never)"),
        ("toxic.reset_peer", "reset_peer: the connection reset (TCP RST) after the timeout"),
        ("toxic.slicer", "slicer: every byte, in order, in small slices"),
        ("toxic.limit_data", "limit_data: closed after exactly n bytes"),
        (
            "toxic.http_error",
            "http_error: the proxy answers an HTTP error instead of the upstream, per request",
        ),
        ("toxic.http_latency", "http_latency: each request held for a delay drawn in its range"),
        ("toxic.toxicity", "toxicity: the share of connections (or requests) a toxic hits, seeded"),
        ("proxy.api", "the Toxiproxy HTTP API as Toxiproxy answers it (statuses, JSON, populate, update)"),
        ("proxy.enable_disable", "a disabled proxy refuses connections and closes open ones"),
        ("proxy.clients", "existing clients (toxiproxy-python, the harness's own) drive the proxy unchanged"),
        ("proxy.supervised", "a killed fault proxy is restarted on its ports with its toxics"),
        ("proxy.http_framing", "the HTTP layer frames pipelined messages exactly; other bytes pass as is"),
    ),
    *_rows(
        Group.EXPERIMENT,
        (
            "experiment.latency_on_one_users_instance",
            "01: latency on users-2: breaker opens, traffic moves, it closes",
        ),
        (
            "experiment.reset_peer_on_one_users_instance",
            "02: resets on users-2: retries mask it, the breaker opens",
        ),
        ("experiment.hung_users_instance", "03: a hung users-2: attempt timeouts, then the breaker"),
        ("experiment.users_instance_killed", "04: users-2 SIGKILLed: evicted in time, then no calls to it"),
        (
            "experiment.registry_cut_off_and_killed",
            "05: registry cut off, then killed: caches serve, instances return",
        ),
        (
            "experiment.orchestrator_killed_mid_saga",
            "06: orchestrator SIGKILLed mid-saga: every saga ends terminal",
        ),
        ("experiment.bandwidth_and_slicer", "07: bandwidth and slicer: slower, no data corrupted or lost"),
        (
            "experiment.reset_peer_per_connection",
            "08: reset_peer at 0.5: drawn per connection, not per request",
        ),
        ("experiment.notifications_down_during_orders", "09: notifications down: orders wait, none undone"),
        ("experiment.own_service_latency", "10: latency on one instance of your own service"),
    ),
    *_rows(
        Group.LOAD,
        (
            "load.thresholds",
            "failure ratio, percentiles and achieved rate judged against the profile's bounds",
        ),
        ("load.shares", "per-instance shares under load follow the weights"),
        (
            "load.breaker_under_fault",
            "under a fault window the breaker opens, others absorb the load, shares return",
        ),
        (
            "load.open_breaker_calls",
            "no call reaches an instance while its breaker is open, beyond its probes",
        ),
        ("load.baseline", "regressions against a baseline run are reported"),
        ("load.distributed", "a master and its workers share the load; none outlives the run"),
        ("load.profiles", "a load profile's mistakes are refused before anything starts, naming the key"),
        ("load.locust_isolated", "Locust runs in a subprocess only, never imported by the harness or pytest"),
    ),
    *_rows(
        Group.HARNESS,
        ("harness.up", "harness up starts the stack, places orders, stops cleanly and leaves no orphan"),
        ("harness.fault_cli", "harness fault adds, lists and removes faults on a running stack"),
        ("harness.chaos_cli", "harness chaos run (and plain chaos run): reports, cleanup, exit codes"),
        ("harness.saga_check", "harness check saga: orders under faults and kills keep every promise"),
        ("harness.exit_codes", "command errors are one line with the documented exit code"),
        (
            "harness.verdicts",
            "a check judges its evidence first: too thin is inconclusive (exit 4), never deviated",
        ),
        ("harness.signals", "SIGINT or SIGTERM stops any run cleanly, faults removed, exit 130 or 143"),
        ("harness.report", "HTML reports are self-contained, open offline and show the timeline"),
        ("harness.timeline", "events of every process merge into one typed timeline"),
        ("harness.fault_schedule", "a random fault schedule is reproducible by its seed and applied on time"),
        ("harness.topology", "topology files: defaults, precedence, refusals naming the key"),
        ("harness.own_services", "users' own services run under the harness (command, external, agent)"),
        (
            "harness.pytest_plugin",
            "the pytest plugin gives users' tests a stack and removes faults after each",
        ),
        ("harness.demo", "harness demo shows discovery, balancing and breakers at work"),
        ("harness.pyramid", "harness pyramid: the behaviour x level matrix and the seeded bugs it catches"),
    ),
)

_BY_ID = {behaviour.id: behaviour for behaviour in BEHAVIOURS}
if len(_BY_ID) != len(BEHAVIOURS):  # a programming mistake in the table above, caught on first import
    raise ValueError("behaviour ids must be unique")


def behaviour(id: str) -> Behaviour:
    """The catalogued behaviour ``id``; UnknownBehaviour (naming it and the nearest ids) otherwise."""
    found = _BY_ID.get(id)
    if found is None:
        raise UnknownBehaviour(id, _nearest(id))
    return found


def known(ids: Iterable[str]) -> tuple[str, ...]:
    """``ids`` in order, each once, after checking every one is catalogued."""
    return tuple(dict.fromkeys(behaviour(id).id for id in ids))


def _nearest(id: str) -> tuple[str, ...]:
    area = id.partition(".")[0]
    same_area = [b.id for b in BEHAVIOURS if b.id.startswith(f"{area}.")]
    return tuple(same_area[:8])
