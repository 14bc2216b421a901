"""One ordered timeline of a run: every process's event log and the fault windows, merged by monotonic time.

Every probe of behaviour over time and every report reads this (state checks, such as the saga
invariants, read the databases instead). Times are given as seconds since the timeline's ``origin``.
``timeline.json`` carries a schema version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from harness.timeline._events import (
    BaseEvent,
    BreakerTransition,
    CallAttempt,
    Event,
    FaultEnd,
    FaultStart,
    MembershipChange,
    OtherEvent,
    parse_event,
)

TIMELINE_VERSION = 1
E = TypeVar("E", bound=BaseEvent)


@dataclass(frozen=True)
class Span:
    """A stretch of time (seconds since the origin); ``end`` is the timeline's end when still open."""

    label: str
    start: float
    end: float

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class FaultSpan:
    window: str
    kind: str
    instance: str
    description: str
    start: float
    end: float


class Timeline(BaseModel):
    """Every event of a run in monotonic order, with the run's origin (t = 0) and end."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = TIMELINE_VERSION
    origin: float
    origin_wall: datetime
    end: float  # seconds since the origin
    events: list[Event]

    @field_validator("events", mode="before")
    @classmethod
    def _typed(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [parse_event(v) if isinstance(v, dict) else v for v in value]
        return value

    # -- reading ----------------------------------------------------------------------------------

    def t(self, event: BaseEvent | float) -> float:
        """Seconds since the origin of an event (or of a monotonic time)."""
        mono = event.mono if isinstance(event, BaseEvent) else event
        return mono - self.origin

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.event == name]

    def attempts(
        self, service: str | None = None, instance: str | None = None, *, caller: str | None = None
    ) -> list[CallAttempt]:
        """Attempts, of one caller process (its ``source``), to one service or instance, when given."""
        return [
            a
            for a in self.of(CallAttempt)
            if (service is None or a.service == service)
            and (instance is None or a.instance == instance)
            and (caller is None or a.source == caller)
        ]

    def sent(self, attempt: CallAttempt) -> float:
        """When the attempt left the caller (seconds since the origin)."""
        return self.t(attempt.sent_at if attempt.sent_at is not None else attempt.mono - attempt.duration)

    def completed(self, attempt: CallAttempt) -> float:
        """When the attempt's outcome was known to the caller (seconds since the origin)."""
        return self.sent(attempt) + attempt.duration

    def breaker_spans(self, service: str, instance: str, *, caller: str | None = None) -> list[Span]:
        """The breaker's states as consecutive spans, CLOSED before its first transition (of one caller
        process's breaker, when given: every caller has breakers of its own)."""
        spans: list[Span] = []
        state, since = "closed", 0.0
        for change in self.of(BreakerTransition):
            if (change.service, change.instance) != (service, instance):
                continue
            if caller is not None and change.source != caller:
                continue
            at = self.t(change)
            spans.append(Span(state, since, at))
            state, since = change.to_state, at
        spans.append(Span(state, since, self.end))
        return [s for s in spans if s.end > s.start or s is spans[-1]]

    def breakers(self) -> list[tuple[str, str]]:
        """Every (caller's service, instance) pair that has a breaker transition or an attempt."""
        pairs = {
            (e.service, e.instance) for e in self.events if isinstance(e, BreakerTransition | CallAttempt)
        }
        return sorted(pairs)

    def faults(self) -> list[FaultSpan]:
        """Fault windows as applied, paired start to end (an unended window lasts to the end)."""
        ends = {e.window: self.t(e) for e in self.of(FaultEnd)}
        return [
            FaultSpan(s.window, s.kind, s.instance, s.fault, self.t(s), ends.get(s.window, self.end))
            for s in self.of(FaultStart)
        ]

    def membership(self, service: str) -> list[tuple[float, list[str]]]:
        """(time, instances listed) each time a caller's view of ``service`` changed."""
        return [(self.t(m), m.instances) for m in self.of(MembershipChange) if m.service == service]

    # -- files ------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=None), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Timeline:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def read_event_files(paths: Iterable[Path]) -> list[Event]:
    """Every event of the JSON-lines files, typed; a torn last line (a killed writer) is skipped and a
    malformed event of a known kind is kept as an ``OtherEvent`` rather than lost."""
    events: list[Event] = []
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(record, dict) or "mono" not in record:
                    continue
                try:
                    events.append(parse_event(record))
                except ValidationError:
                    events.append(OtherEvent.model_validate(record))
    return events


def build_timeline(
    sources: Sequence[Path], *, origin: float | None = None, end: float | None = None
) -> Timeline:
    """Merge event files (or every ``*.jsonl`` of the folders given) into one timeline.

    ``origin`` (monotonic) defaults to the first event; ``end`` (monotonic) to the last one."""
    files: list[Path] = []
    for source in sources:
        files += sorted(source.glob("*.jsonl")) if source.is_dir() else [source]
    events = sorted(read_event_files(files), key=lambda e: e.mono)
    first = origin if origin is not None else (events[0].mono if events else 0.0)
    last = end if end is not None else (events[-1].mono if events else first)
    wall = _wall_at(events, first)
    return Timeline(origin=first, origin_wall=wall, end=max(0.0, last - first), events=events)


def _wall_at(events: list[Event], mono: float) -> datetime:
    """The wall-clock time of a monotonic instant, from the event nearest to it."""
    if not events:
        return datetime.now(UTC)
    nearest = min(events, key=lambda e: abs(e.mono - mono))
    return datetime.fromtimestamp(nearest.ts.timestamp() - (nearest.mono - mono), UTC)
