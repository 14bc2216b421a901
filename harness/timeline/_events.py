"""Typed events: every kind the processes of a run write, one model each, read back from JSON lines.

Every event has its wall-clock time (``ts``), its monotonic time (``mono``: one clock for every process
on the machine, so events of different processes order correctly) and its ``source`` process. The
``event`` name selects the model; a name this version does not know is kept as an ``OtherEvent`` (an
older or newer file stays readable), never dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field


class BaseEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: datetime
    mono: float
    source: str


class BreakerTransition(BaseEvent):
    """A caller's breaker towards one instance changed state."""

    event: Literal["client.breaker_transition"]
    service: str
    instance: str
    from_state: str
    to_state: str
    reason: str = ""


class CallAttempt(BaseEvent):
    """One attempt of a ServiceClient call to one instance (the evidence of traffic shares)."""

    event: Literal["client.attempt"]
    service: str
    instance: str
    outcome: str  # status_2xx .. status_5xx, timeout, connect_error, transport_error
    status: int | None = None
    admitted: str = "closed"  # the breaker state that admitted it: closed or half_open (a probe)
    sent_at: float | None = None  # monotonic
    duration: float = 0.0
    method: str = ""
    path: str = ""

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


class CallRetry(BaseEvent):
    event: Literal["client.retry"]
    service: str
    instance: str
    attempt: int
    delay: float


class MonkeyInjection(BaseEvent):
    """A ChaosMonkey delayed or failed one call (``failure`` empty: latency only)."""

    event: Literal["monkey.injected"]
    target: str
    method: str = ""
    path: str = ""
    latency: float = 0.0  # seconds
    failure: str = ""  # status_503, connect_error, disconnect, timeout
    status: int | None = None


class MembershipChange(BaseEvent):
    """What a caller's discovery cache lists for a service changed."""

    event: Literal["discovery.membership_changed"]
    service: str
    instances: list[str]
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class RegistryChange(BaseEvent):
    """The registry's view of one instance changed (registered, health changed, evicted, ...)."""

    event: Literal[
        "registry.registered",
        "registry.reregistered",
        "registry.health_changed",
        "registry.deregistered",
        "registry.expired",
        "registry.evicted",
    ]
    instance_id: str
    service: str
    status: str = ""
    reason: str = ""

    @property
    def change(self) -> str:
        return self.event.removeprefix("registry.")


class HealthCheck(BaseEvent):
    """One active health check of the registry."""

    event: Literal["registry.check"]
    instance_id: str
    service: str
    result: str  # passing or failing
    detail: str = ""


class SagaStep(BaseEvent):
    event: Literal["saga.step"]
    order_id: str
    step: str
    status: str
    state: str
    detail: str = ""


class SagaOutcome(BaseEvent):
    event: Literal["saga.completed", "saga.compensated", "saga.needs_attention"]
    order_id: str
    reason: str | None = None


class FaultStart(BaseEvent):
    event: Literal["fault.start"]
    window: str
    kind: str
    instance: str
    fault: str
    at: float = 0.0  # seconds since the schedule began


class FaultEnd(BaseEvent):
    event: Literal["fault.end"]
    window: str
    kind: str
    instance: str
    at: float = 0.0
    lasted: float = 0.0
    reason: str = "scheduled"


class RequestSample(BaseEvent):
    """One request of the harness's own background traffic, with its outcome and latency."""

    event: Literal["traffic.request"]
    target: str
    outcome: str  # ok, error, failed (no answer)
    status: int | None = None
    latency: float  # seconds
    detail: str = ""


class LoadSample(BaseEvent):
    """A load generator's aggregate over its last interval."""

    event: Literal["load.sample"]
    users: int = 0
    rate: float = 0.0  # completed requests per second
    failures: float = 0.0  # failed requests per second
    p50: float | None = None  # milliseconds
    p95: float | None = None
    p99: float | None = None


class ProcessChange(BaseEvent):
    """The harness started, stopped, killed, paused, resumed or restarted a process."""

    event: Literal[
        "process.started", "process.stopped", "process.killed", "process.paused", "process.resumed",
        "process.restarted", "process.exited",
    ]  # fmt: skip
    name: str
    pid: int | None = None
    detail: str = ""


class OtherEvent(BaseEvent):
    """An event of a kind without a model of its own here; its fields are kept as written."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: str

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


Event = (
    BreakerTransition
    | CallAttempt
    | CallRetry
    | MonkeyInjection
    | MembershipChange
    | RegistryChange
    | HealthCheck
    | SagaStep
    | SagaOutcome
    | FaultStart
    | FaultEnd
    | RequestSample
    | LoadSample
    | ProcessChange
    | OtherEvent
)

_MODELS: tuple[type[BaseEvent], ...] = (
    BreakerTransition, CallAttempt, CallRetry, MembershipChange, RegistryChange, HealthCheck, SagaStep,
    SagaOutcome, FaultStart, FaultEnd, RequestSample, LoadSample, ProcessChange, MonkeyInjection,
)  # fmt: skip
KNOWN_EVENTS: dict[str, type[BaseEvent]] = {
    name: model for model in _MODELS for name in get_args(model.model_fields["event"].annotation)
}


def parse_event(record: dict[str, Any]) -> Event:
    """The typed event of one decoded JSON line (ValidationError when a known kind is malformed)."""
    model = KNOWN_EVENTS.get(str(record.get("event")), OtherEvent)
    event: Event = model.model_validate(record)  # type: ignore[assignment]
    return event
