"""Chaos Toolkit probes of the harness's stack: breakers, traffic shares, registry, sagas, latency.

Behaviour over time is read from the run's timeline (what the processes themselves recorded); state
(saga invariants) from the services. ``during`` picks a stretch of the run: ``"run"`` (default), the name
of a fault the run applied, ``"fault"`` (the last fault), ``"before"``/``"after"`` the faults, or
``"last:N"`` seconds. Every probe returns plain JSON values, so tolerances can judge them.

A probe of behaviour over time also declares the evidence it needs (``session.needs``: the harness kept its
time; enough calls in the period), which the control judges first: too thin, and the probe is
inconclusive rather than failed.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from pydantic import Field

from harness.checks import check_saga_invariants, collect_saga_snapshot
from harness.checks._breaker_conformance import breaker_conformance as _conformance

from . import _evidence as evidence
from ._arguments import Instance, Service
from ._session import ChaosSession
from .actions import session_of

Configuration = dict[str, Any]

__all__ = [
    "breaker_conformance",
    "breaker_conforms",
    "breaker_history",
    "breaker_state",
    "calls_after_eviction",
    "calls_to",
    "evicted_in_time",
    "orders_in_state",
    "registry_lists",
    "registry_members",
    "saga_invariants",
    "saga_invariants_hold",
    "time_to_eviction",
    "traffic_error_ratio",
    "traffic_latency",
    "traffic_share",
]


def breaker_state(caller: Instance, instance: Instance, configuration: Configuration | None = None) -> str:
    """closed, open or half_open: the caller's breaker towards the instance now."""
    session = session_of(configuration)
    session.instance(caller)
    return evidence.breaker_state(session.timeline(), caller, instance)


def breaker_history(
    caller: Instance, instance: Instance, configuration: Configuration | None = None
) -> list[dict[str, Any]]:
    """Every transition of the caller's breaker towards the instance: time, from, to, reason."""
    session = session_of(configuration)
    return evidence.breaker_history(session.timeline(), caller, instance)


def breaker_conformance(
    caller: Instance, instance: Instance, fault: str | None = None, configuration: Configuration | None = None
) -> dict[str, Any]:
    """Breaker conformance for the caller towards the instance under a fault (by name, default the last
    fault on the instance): each figure next to its bound, and whether all hold."""
    session = session_of(configuration)
    timeline = session.timeline()
    span = evidence.fault_span(timeline, fault, instance)
    service = session.instance(instance).kind
    config, attempt_timeout = session.client_config(caller, service)
    attempts = [
        a for a in timeline.attempts(service, caller=caller) if span.start <= timeline.sent(a) < span.end
    ]
    session.needs(calls=(f"attempts by {caller} to {service} during {span.window}", len(attempts)))
    if config is None:
        return {"holds": False, "figures": [f"{caller} has no breaker towards {service} (breaker off)"]}
    result = _conformance(
        timeline,
        service=service,
        instance=instance,
        fault_start=span.start,
        fault_end=span.end,
        config=config,
        probe_round=attempt_timeout + 0.5,
        fault=span.description,
        caller=caller,
    )
    session.record_conformance(caller, result)
    return {"holds": result.holds, "fault": span.window, "figures": [f.line() for f in result.figures]}


def breaker_conforms(
    caller: Instance, instance: Instance, fault: str | None = None, configuration: Configuration | None = None
) -> bool:
    """``breaker_conformance(...)["holds"]``, for a plain ``true`` tolerance."""
    return bool(breaker_conformance(caller, instance, fault, configuration)["holds"])


def traffic_share(
    caller: Instance,
    service: Service,
    instance: Instance,
    during: str | None = None,
    skip: float = 0.0,
    configuration: Configuration | None = None,
) -> float:
    """The instance's share of the caller's attempts to ``service`` during the period, leaving out its
    first ``skip`` seconds (the time a breaker needs to see the fault); 0 when there were none."""
    session = session_of(configuration)
    timeline = session.timeline()
    within = evidence.period(timeline, during, instance=instance, skip=skip)
    counts = evidence.shares(timeline, caller, service, within)
    total = sum(counts.values())
    session.needs(calls=(f"attempts by {caller} to {service} in {within.label}", total))
    return round(counts.get(instance, 0) / total, 4) if total else 0.0


def calls_to(
    caller: Instance,
    instance: Instance,
    during: str | None = None,
    skip: float = 0.0,
    configuration: Configuration | None = None,
) -> int:
    """Attempts the caller sent to the instance during the period (leaving out its first ``skip`` s)."""
    session = session_of(configuration)
    timeline = session.timeline()
    service = session.instance(instance).kind
    within = evidence.period(timeline, during, instance=instance, skip=skip)
    counts = evidence.shares(timeline, caller, service, within)
    session.needs(calls=(f"attempts by {caller} to {service} in {within.label}", sum(counts.values())))
    return counts.get(instance, 0)


def registry_members(service: Service, configuration: Configuration | None = None) -> list[str]:
    """The instances of the service the registry lists as healthy now."""
    return evidence.registry_members(session_of(configuration), service)


def registry_lists(service: Service, instance: Instance, configuration: Configuration | None = None) -> bool:
    """Whether the registry lists the instance as a healthy instance of the service now."""
    return instance in evidence.registry_members(session_of(configuration), service)


def saga_invariants(configuration: Configuration | None = None) -> list[str]:
    """Every broken saga invariant, as sentences (an empty list: all hold)."""
    session = session_of(configuration)
    snapshot = collect_saga_snapshot(
        session.first("orchestrator").url, session.first("users").url, session.first("notifications").url
    )
    return check_saga_invariants(snapshot)


def saga_invariants_hold(configuration: Configuration | None = None) -> bool:
    """Whether every saga invariant holds now (``saga_invariants`` says which does not)."""
    return not saga_invariants(configuration)


def traffic_latency(
    name: str = "orders",
    percentile: Annotated[float, Field(ge=0, le=100)] = 99.0,
    during: str | None = None,
    configuration: Configuration | None = None,
) -> float | None:
    """The traffic's latency percentile in milliseconds, over its requests that started in the period."""
    session = session_of(configuration)
    timeline = session.timeline()
    within = evidence.period(timeline, during)
    samples = evidence.requests(timeline, name, within)
    session.needs(calls=(f"requests of traffic {name} in {within.label}", len(samples)))
    value = evidence.percentile([r.latency for r in samples], percentile)
    return None if value is None else round(value * 1000, 2)


def traffic_error_ratio(
    name: str = "orders", during: str | None = None, configuration: Configuration | None = None
) -> float:
    """The share of the traffic's requests that started in the period and did not succeed."""
    session = session_of(configuration)
    timeline = session.timeline()
    within = evidence.period(timeline, during)
    samples = evidence.requests(timeline, name, within)
    session.needs(calls=(f"requests of traffic {name} in {within.label}", len(samples)))
    if not samples:
        return 0.0  # judged inconclusive (too few requests) before its tolerance
    return round(sum(r.outcome != "ok" for r in samples) / len(samples), 4)


def time_to_eviction(
    instance: Instance, fault: str | None = None, configuration: Configuration | None = None
) -> float | None:
    """Seconds from the start of the fault (default: the last on the instance) to the registry dropping the
    instance; None when it was not dropped."""
    session: ChaosSession = session_of(configuration)
    timeline = session.timeline()
    span = evidence.fault_span(timeline, fault, instance)
    session.needs()
    return evidence.eviction_after(timeline, instance, span.start)


def evicted_in_time(
    instance: Instance, fault: str | None = None, configuration: Configuration | None = None
) -> bool:
    """Whether the registry dropped the instance within its bound after the fault (default: the last on
    the instance): its TTL plus one health-check interval."""
    session = session_of(configuration)
    registry = session.topology.registry
    seconds = time_to_eviction(instance, fault, configuration)
    bound = registry.ttl + registry.check_interval
    session.progress(f"    {instance} dropped by the registry after {seconds}s (bound {bound:g}s)")
    return seconds is not None and seconds <= bound


def calls_after_eviction(
    caller: Instance,
    instance: Instance,
    allowance: float = 1.0,
    fault: str | None = None,
    configuration: Configuration | None = None,
) -> int:
    """Attempts the caller sent to the instance more than ``allowance`` seconds (one cache refresh) after
    the registry dropped it; -1 when the registry never dropped it."""
    session = session_of(configuration)
    timeline = session.timeline()
    span = evidence.fault_span(timeline, fault, instance)
    dropped = evidence.eviction_after(timeline, instance, span.start)
    session.needs()
    if dropped is None:
        return -1
    since = span.start + dropped + allowance
    service = session.instance(instance).kind
    return sum(
        1 for a in timeline.attempts(service, instance, caller=caller) if since <= timeline.sent(a) < span.end
    )


def orders_in_state(state: str, configuration: Configuration | None = None) -> int:
    """How many orders the orchestrator has in ``state`` now (e.g. NEEDS_ATTENTION)."""
    session = session_of(configuration)
    url = session.first("orchestrator").url
    answer = httpx.get(f"{url}/orders", params={"limit": 1}, timeout=5.0, trust_env=False)
    answer.raise_for_status()
    return int(answer.json()["counts"].get(state, 0))
