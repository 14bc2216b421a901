"""The report's data, shaped from the timeline without any plotting: bins, counts, percentiles, lanes.

Pure, so what a plot shows is tested on numbers, not on pixels. Every time is in seconds since the
timeline's origin, the one axis every plot shares. Requests are placed in time when they were sent.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from harness.timeline import (
    BreakerTransition,
    CallAttempt,
    HealthCheck,
    LoadSample,
    MembershipChange,
    ProcessChange,
    RegistryChange,
    RequestSample,
    SagaOutcome,
    Span,
    Timeline,
)

_NICE_WIDTHS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
MAX_BINS = 60
MARKER_LANES = ("breakers", "registry", "health checks", "processes", "sagas")


def bin_width(duration: float, max_bins: int = MAX_BINS) -> float:
    """The smallest round bin width that splits ``duration`` seconds into at most ``max_bins`` bins."""
    for width in _NICE_WIDTHS:
        if duration / width <= max_bins:
            return width
    return math.ceil(duration / max_bins / 600.0) * 600.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of the values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class Outcomes:
    """Per bin, for one instance (or one target of the background traffic): successes, failures and
    latency percentiles in milliseconds (None for a bin without requests)."""

    name: str
    starts: tuple[float, ...]
    ok: tuple[int, ...]
    failed: tuple[int, ...]
    p50_ms: tuple[float | None, ...]
    p95_ms: tuple[float | None, ...]

    @property
    def total(self) -> int:
        return sum(self.ok) + sum(self.failed)


@dataclass(frozen=True)
class _Request:
    at: float
    ok: bool
    latency: float


def outcomes(timeline: Timeline, width: float) -> list[Outcomes]:
    """ServiceClient attempts per instance, then the harness's own traffic per target."""
    by_name: dict[str, list[_Request]] = defaultdict(list)
    for attempt in timeline.of(CallAttempt):
        by_name[attempt.instance].append(
            _Request(timeline.sent(attempt), not attempt.failed, attempt.duration)
        )
    traffic: dict[str, list[_Request]] = defaultdict(list)
    for sample in timeline.of(RequestSample):
        sent = timeline.t(sample) - sample.latency
        traffic[f"traffic {sample.target}"].append(_Request(sent, sample.outcome == "ok", sample.latency))
    count = max(1, math.ceil(timeline.end / width))
    return [
        _binned(name, requests, width, count)
        for group in (by_name, traffic)
        for name, requests in sorted(group.items())
    ]


def _binned(name: str, requests: list[_Request], width: float, count: int) -> Outcomes:
    ok, failed = [0] * count, [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    for request in requests:
        index = min(count - 1, max(0, int(request.at // width)))
        if request.ok:
            ok[index] += 1
        else:
            failed[index] += 1
        latencies[index].append(request.latency * 1000.0)
    return Outcomes(
        name=name,
        starts=tuple(round(i * width, 6) for i in range(count)),
        ok=tuple(ok),
        failed=tuple(failed),
        p50_ms=tuple(percentile(values, 0.50) for values in latencies),
        p95_ms=tuple(percentile(values, 0.95) for values in latencies),
    )


@dataclass(frozen=True)
class Lane:
    """A horizontal lane of labelled spans (a breaker's states, an instance's membership)."""

    label: str
    spans: tuple[Span, ...]


def breaker_lanes(timeline: Timeline) -> list[Lane]:
    """One lane per breaker (service / instance): closed, half_open and open spans. Every caller process
    has breakers of its own, so when several call one instance each gets its lane ("caller ...")."""
    callers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in timeline.events:
        if isinstance(event, BreakerTransition | CallAttempt):
            callers[(event.service, event.instance)].add(event.source)
    lanes = []
    for service, instance in timeline.breakers():
        sources = sorted(callers[(service, instance)])
        if len(sources) <= 1:
            lanes.append(Lane(f"{service} / {instance}", tuple(timeline.breaker_spans(service, instance))))
            continue
        for source in sources:
            spans = timeline.breaker_spans(service, instance, caller=source)
            lanes.append(Lane(f"{service} / {instance} (caller {source})", tuple(spans)))
    return lanes


@dataclass(frozen=True)
class Marker:
    """One instant worth pointing at, on a named lane, with what happened."""

    lane: str
    at: float
    text: str


def membership_lanes(timeline: Timeline) -> tuple[list[Lane], list[Marker]]:
    """Per service and instance, when a caller's discovery listed it; and the registry's own changes.

    When several callers report a service, each caller's view gets its own lanes ("seen by ...")."""
    changes: dict[tuple[str, str], list[MembershipChange]] = defaultdict(list)
    for change in timeline.of(MembershipChange):
        changes[(change.service, change.source)].append(change)
    callers: dict[str, int] = defaultdict(int)
    for service, _source in changes:
        callers[service] += 1
    lanes: dict[str, list[Span]] = {}
    for (service, source), listed in sorted(changes.items()):
        suffix = f" (seen by {source})" if callers[service] > 1 else ""
        for instance, spans in _listed_spans(timeline, listed).items():
            lanes[f"{service}: {instance}{suffix}"] = spans
    markers = []
    for registry in timeline.of(RegistryChange):
        label = f"{registry.service}: {registry.instance_id}"
        lanes.setdefault(label, [])
        markers.append(Marker(label, timeline.t(registry), _registry_text(registry)))
    return [Lane(label, tuple(spans)) for label, spans in sorted(lanes.items())], markers


def _listed_spans(timeline: Timeline, changes: list[MembershipChange]) -> dict[str, list[Span]]:
    spans: dict[str, list[Span]] = defaultdict(list)
    bounds = [timeline.t(c) for c in changes] + [timeline.end]
    for change, start, end in zip(changes, bounds, bounds[1:], strict=False):
        for instance in change.instances:
            earlier = spans[instance]
            if earlier and earlier[-1].end == start:
                earlier[-1] = Span("listed", earlier[-1].start, end)
            else:
                earlier.append(Span("listed", start, end))
    return dict(spans)


def _registry_text(change: RegistryChange) -> str:
    facts = [change.change, change.status, change.reason]
    return " ".join(f for f in facts if f)


def event_markers(timeline: Timeline) -> list[Marker]:
    """The instants of the overview plot: breaker transitions, registry changes, failed health checks,
    process changes and saga outcomes, one lane per kind (``MARKER_LANES``)."""
    markers: list[Marker] = []
    for event in timeline.events:
        at = timeline.t(event)
        match event:
            case BreakerTransition():
                text = f"{event.service} / {event.instance}: {event.from_state} -> {event.to_state}"
                markers.append(Marker("breakers", at, _with(text, event.reason)))
            case RegistryChange():
                markers.append(Marker("registry", at, f"{event.instance_id}: {_registry_text(event)}"))
            case HealthCheck() if event.result != "passing":
                markers.append(
                    Marker("health checks", at, _with(f"{event.instance_id} failing", event.detail))
                )
            case ProcessChange():
                change = event.event.removeprefix("process.")
                markers.append(Marker("processes", at, _with(f"{event.name} {change}", event.detail)))
            case SagaOutcome():
                outcome = event.event.removeprefix("saga.")
                markers.append(Marker("sagas", at, _with(f"order {event.order_id} {outcome}", event.reason)))
            case _:
                pass
    return markers


def _with(text: str, detail: str | None) -> str:
    return f"{text} ({detail})" if detail else text


@dataclass(frozen=True)
class LoadSeries:
    """The load generator's aggregates over time (rates per second, percentiles in milliseconds)."""

    at: tuple[float, ...]
    users: tuple[int, ...]
    rate: tuple[float, ...]
    failures: tuple[float, ...]
    p50_ms: tuple[float | None, ...]
    p95_ms: tuple[float | None, ...]
    p99_ms: tuple[float | None, ...]


def load_series(timeline: Timeline) -> LoadSeries | None:
    samples = timeline.of(LoadSample)
    if not samples:
        return None
    return LoadSeries(
        at=tuple(timeline.t(s) for s in samples),
        users=tuple(s.users for s in samples),
        rate=tuple(s.rate for s in samples),
        failures=tuple(s.failures for s in samples),
        p50_ms=tuple(s.p50 for s in samples),
        p95_ms=tuple(s.p95 for s in samples),
        p99_ms=tuple(s.p99 for s in samples),
    )
