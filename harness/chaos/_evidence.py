"""What probes and conditions read: the run's timeline (behaviour over time), the registry, the databases.

Every figure of behaviour over time comes from the timeline the processes wrote (the callers' own
``client.*`` events, the registry's events, the harness's fault windows and traffic), never from a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from harness.errors import ConfigError
from harness.timeline import BreakerTransition, FaultSpan, RegistryChange, RequestSample, Timeline

from ._session import ChaosSession


@dataclass(frozen=True)
class Period:
    """A stretch of the run, in seconds since its origin."""

    start: float
    end: float
    label: str


def breaker_state(timeline: Timeline, caller: str, instance: str) -> str:
    """The caller's breaker towards ``instance`` as its last transition left it (closed if none)."""
    state = "closed"
    for change in timeline.of(BreakerTransition):
        if change.source == caller and change.instance == instance:
            state = change.to_state
    return state


def breaker_history(timeline: Timeline, caller: str, instance: str) -> list[dict[str, object]]:
    return [
        {"t": round(timeline.t(c), 3), "from": c.from_state, "to": c.to_state, "reason": c.reason}
        for c in timeline.of(BreakerTransition)
        if c.source == caller and c.instance == instance
    ]


def fault_span(timeline: Timeline, fault: str | None, instance: str | None = None) -> FaultSpan:
    """The fault window called ``fault``, or the last one on ``instance`` (or the last one at all)."""
    spans = timeline.faults()
    if fault is not None:
        found = [s for s in spans if s.window == fault]
    else:
        found = [s for s in spans if instance is None or s.instance == instance]
    if not found:
        what = f"fault {fault!r}" if fault else f"fault on {instance}" if instance else "fault"
        raise ConfigError(
            f"no {what} in this run yet; faults so far: {', '.join(s.window for s in spans) or 'none'}"
        )
    return found[-1]


def period(
    timeline: Timeline, during: str | None, *, instance: str | None = None, skip: float = 0.0
) -> Period:
    """The stretch ``during`` names (see ``_period``), less its first ``skip`` seconds."""
    whole = _period(timeline, during, instance=instance)
    if skip <= 0:
        return whole
    return Period(min(whole.start + skip, whole.end), whole.end, f"{whole.label} after its first {skip:g}s")


def _period(timeline: Timeline, during: str | None, *, instance: str | None = None) -> Period:
    """``None``/"run": the whole run; "fault" (the last fault, on ``instance`` if given) or a fault's name:
    that window; "before" / "after": before the first fault, after the last one ends; "last:N": the last N
    seconds."""
    match during:
        case None | "run":
            return Period(0.0, timeline.end, "the run")
        case "before":
            spans = timeline.faults()
            return Period(0.0, min((s.start for s in spans), default=timeline.end), "before any fault")
        case "after":
            spans = timeline.faults()
            return Period(max((s.end for s in spans), default=0.0), timeline.end, "after the faults")
        case str() if during.startswith("last:"):
            seconds = float(during.removeprefix("last:"))
            return Period(max(0.0, timeline.end - seconds), timeline.end, f"the last {seconds:g}s")
        case "fault":
            span = fault_span(timeline, None, instance)
            return Period(span.start, span.end, f"fault {span.window}")
        case _:
            span = fault_span(timeline, during)
            return Period(span.start, span.end, f"fault {span.window}")


def shares(timeline: Timeline, caller: str, service: str, within: Period) -> dict[str, int]:
    """Attempts the caller sent to each instance of ``service`` in the period."""
    counts: dict[str, int] = {}
    for attempt in timeline.attempts(service):
        if attempt.source == caller and within.start <= timeline.sent(attempt) < within.end:
            counts[attempt.instance] = counts.get(attempt.instance, 0) + 1
    return counts


def requests(timeline: Timeline, name: str, within: Period) -> list[RequestSample]:
    """The traffic's requests that started in the period."""
    return [
        r
        for r in timeline.of(RequestSample)
        if r.target == name and within.start <= timeline.t(r) - r.latency < within.end
    ]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of ``values``; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def registry_members(session: ChaosSession, service: str) -> list[str]:
    """The instances of ``service`` the registry lists as healthy now."""
    try:
        answer = httpx.get(
            f"{session.stack.registry_url}/v1/services/{service}/instances", timeout=5.0, trust_env=False
        )
        answer.raise_for_status()
        return sorted(i["instance_id"] for i in answer.json()["instances"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise ConfigError(f"the registry did not answer for {service}: {exc}") from exc


def eviction_after(timeline: Timeline, instance: str, since: float) -> float | None:
    """Seconds from ``since`` to the registry dropping ``instance`` (evicted, expired or critical)."""
    for change in timeline.of(RegistryChange):
        at = timeline.t(change)
        if change.instance_id != instance or at < since:
            continue
        if change.change in ("evicted", "expired", "deregistered") or change.status == "critical":
            return round(at - since, 3)
    return None
