"""Load profiles: one small TOML file per scenario, read into one typed model or refused in one line.

A profile says what to send (orders through the orchestrator, user reads, or any HTTP route), how much
(users and spawn rate, or stages for steps and spikes; a constant arrival rate per user when set), for
how long, which faults to apply meanwhile (a ``FaultSchedule``, times in seconds since the load began),
the thresholds of the run and the behaviour checks of the caller's balancer and breakers.
"""

from __future__ import annotations

import enum
import itertools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness._documents import Format, error_line, read_document
from harness._fault_values import fault_refusal
from harness.errors import ConfigError
from harness.faults import FaultSchedule

JsonScalar = str | int | float | bool | None


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TargetKind(enum.StrEnum):
    ORDERS = "orders"  # POST /orders to the orchestrator, a fresh Idempotency-Key per request
    USER_READS = "user_reads"  # GET /users/{id} on the users instances, in turn
    HTTP = "http"  # any route of a service or instance of the topology, or of a URL outside the stack


class Target(_Table):
    """What every simulated user sends."""

    kind: TargetKind = TargetKind.ORDERS
    amount: int = Field(default=1, ge=1, description="orders: the amount of each order")
    service: str | None = Field(default=None, description="http: every instance of this service, in turn")
    instance: str | None = Field(default=None, description="http: this one instance")
    url: str | None = Field(default=None, description="http: a base URL outside the stack (no checks)")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: str = Field(default="/health", pattern=r"^/[^\s]*$", max_length=2000)
    body: dict[str, JsonScalar] | None = Field(default=None, description="http: a JSON body to send")
    expect: list[int] = Field(default_factory=list, description="http: statuses counted as success (2xx)")
    through_proxy: bool = Field(default=True, description="http: reach instances through their proxies")

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        http_only = ("service", "instance", "url", "body", "expect")
        if self.kind is not TargetKind.HTTP:
            given = [name for name in http_only if name in self.model_fields_set]
            given += [name for name in ("method", "path") if name in self.model_fields_set]
            if given:
                raise ValueError(f"{given[0]} is for kind = 'http' only")
            return self
        chosen = [name for name in ("service", "instance", "url") if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError("kind = 'http' needs exactly one of service, instance or url")
        for status in self.expect:
            if not 100 <= status <= 599:
                raise ValueError(f"expect: {status} is not an HTTP status")
        return self

    @property
    def in_stack(self) -> bool:
        """Whether the target is a part of the stack (else a URL outside it: no faults, no checks)."""
        return self.url is None


class Stage(_Table):
    """From the previous stage's end until ``until`` seconds: this many users, spawned at this rate."""

    until: float = Field(gt=0, le=86_400)
    users: int = Field(ge=0, le=100_000)
    spawn_rate: float = Field(gt=0, le=10_000, description="users started (or stopped) per second")


class Load(_Table):
    """How many users, for how long; with ``rate_per_user`` each user sends at a constant rate
    (Locust's ``constant_throughput``) so the offered rate is known, else as fast as answers come."""

    users: int | None = Field(default=None, ge=1, le=100_000)
    spawn_rate: float | None = Field(default=None, gt=0, le=10_000)
    duration: float | None = Field(default=None, gt=0, le=86_400, description="seconds")
    rate_per_user: float | None = Field(default=None, gt=0, le=10_000, description="requests/s per user")
    request_timeout: float = Field(default=10.0, gt=0, le=600, description="seconds per request")
    stages: list[Stage] = Field(default_factory=list, description="a shape: steps, a spike")

    @model_validator(mode="after")
    def _steady_or_staged(self) -> Load:
        if self.stages:
            if self.users is not None or self.spawn_rate is not None:
                raise ValueError("give users and spawn_rate, or stages, not both")
            ends = [stage.until for stage in self.stages]
            if any(b <= a for a, b in itertools.pairwise(ends)):
                raise ValueError("stages: each until must be later than the one before")
            if self.duration is not None and self.duration != ends[-1]:
                raise ValueError(
                    f"duration {self.duration:g} differs from the last stage's until {ends[-1]:g}"
                )
            return self
        if self.users is None or self.duration is None:
            raise ValueError("give users and duration (or stages)")
        return self

    def planned_stages(self) -> list[Stage]:
        """The load as stages (a steady load is one stage; spawning defaults to all users in a second)."""
        if self.stages:
            return list(self.stages)
        assert self.users is not None
        assert self.duration is not None
        return [Stage(until=self.duration, users=self.users, spawn_rate=self.spawn_rate or float(self.users))]

    @property
    def seconds(self) -> float:
        return self.planned_stages()[-1].until

    @property
    def peak_users(self) -> int:
        return max(stage.users for stage in self.planned_stages())

    @property
    def offered_peak(self) -> float | None:
        """Requests per second at the peak, with a constant arrival rate; None for a closed loop."""
        return None if self.rate_per_user is None else self.peak_users * self.rate_per_user


class Thresholds(_Table):
    """Bounds on what Locust measured for the whole run (every request of every endpoint)."""

    failure_ratio: float | None = Field(default=None, ge=0, le=1, description="failed / all, at most")
    p50_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    achieved_ratio: float | None = Field(
        default=None, gt=0, le=1, description="achieved / offered rate, at least (needs rate_per_user)"
    )
    min_rate: float | None = Field(default=None, gt=0, description="completed requests per second, at least")


class Evidence(_Table):
    """What the harness itself must produce for the run's figures to mean anything. With less, the run is
    inconclusive (exit 4), never deviated: a busy machine must not read as a broken system."""

    min_achieved_ratio: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="achieved / offered rate before the first fault, at least (needs rate_per_user)",
    )
    max_lag_p99_ms: float = Field(
        default=50.0, gt=0, le=60_000, description="the harness's own timing lag over the load, p99, at most"
    )
    min_calls: int = Field(
        default=20, ge=1, description="the caller's attempts before the first fault (what faults compare to)"
    )


class SharesCheck(_Table):
    """Each instance's share of the caller's attempts, within ``tolerance`` of its weight's share.

    Judged before the first fault (the whole load when there is none). ``weights`` default to what the
    stack runs: the instances' registered weights with a weighted balancer, equal shares otherwise."""

    tolerance: float = Field(default=0.05, gt=0, lt=1, description="absolute, e.g. 0.05 = 5 points")
    weights: dict[str, int] | None = Field(default=None, description="instance -> weight")
    min_calls: int = Field(
        default=30, ge=1, description="fewer attempts than this prove nothing: inconclusive"
    )


class BreakerCheck(_Table):
    """For every fault window on an instance of the service: the caller's breaker opens within its
    bounds, the instance gets its probes only, the others absorb the load, and after the fault the
    breaker closes and the shares return."""

    max_share_ratio: float = Field(
        default=0.05, ge=0, le=1, description="share during the fault (once OPEN) / share before, at most"
    )
    absorb_min: float = Field(
        default=0.8, ge=0, le=2, description="others' successful calls/s during the fault / all before"
    )
    recover_within: float = Field(default=5.0, gt=0, description="seconds after the fault for shares")
    tolerance: float = Field(default=0.05, gt=0, lt=1, description="of the shares after recovery")


class Checks(_Table):
    """Behaviour checks of one caller's ServiceClient (its own events and /metrics are the evidence)."""

    caller: str = Field(default="orchestrator-1", min_length=1, max_length=63)
    service: str = Field(default="users", min_length=1, max_length=63)
    shares: SharesCheck | None = None
    breaker: BreakerCheck | None = None

    @property
    def any(self) -> bool:
        return self.shares is not None or self.breaker is not None


class Regression(_Table):
    """What counts as a regression against ``--baseline``: latency percentiles more than ``tolerance``
    worse, the achieved rate more than ``tolerance`` lower, the failure ratio up by more than
    ``failure_ratio`` (absolute)."""

    tolerance: float = Field(default=0.25, ge=0, le=10)
    failure_ratio: float = Field(default=0.01, ge=0, le=1)


RECOVERY_MARGIN = 2.0
"""Seconds of load a recovery check needs after ``recover_within``, to measure the shares over."""


class LoadProfile(_Table):
    """One scenario; only ``title``, ``target`` and ``load`` are required."""

    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    target: Target = Field(default_factory=Target)
    load: Load
    faults: FaultSchedule = Field(default_factory=FaultSchedule)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    evidence: Evidence = Field(default_factory=Evidence)
    checks: Checks = Field(default_factory=Checks)
    regression: Regression = Field(default_factory=Regression)

    @model_validator(mode="after")
    def _coherent(self) -> LoadProfile:
        duration = self.load.seconds
        if not self.target.in_stack and (self.faults.windows or self.checks.any):
            raise ValueError("faults and checks need a target in the stack, not a url")
        if self.thresholds.achieved_ratio is not None and self.load.rate_per_user is None:
            raise ValueError("thresholds.achieved_ratio needs load.rate_per_user (an offered rate)")
        for window in self.faults.windows:
            if window.end is None or window.end > duration:
                raise ValueError(f"faults: window {window.name} must end within the load ({duration:g} s)")
            fault = window.fault
            refusal = fault_refusal(fault.kind, fault.attributes, fault.toxicity)
            if refusal is not None:  # what the fault proxy would refuse mid-run
                raise ValueError(f"faults.windows.{window.name}.fault.{refusal}")
        breaker = self.checks.breaker
        if breaker is not None:
            on_service = [
                w for w in self.faults.windows if w.fault.instance.startswith(f"{self.checks.service}-")
            ]
            if not on_service:
                raise ValueError(
                    f"checks.breaker needs a fault window on an instance of {self.checks.service}"
                )
            for window in on_service:
                assert window.end is not None
                if window.end + breaker.recover_within + RECOVERY_MARGIN > duration:
                    raise ValueError(
                        f"checks.breaker: window {window.name} ends at {window.end:g} s; recovery is judged "
                        f"{breaker.recover_within:g} s later over at least {RECOVERY_MARGIN:g} s, so the "
                        f"load must last at least {window.end + breaker.recover_within + RECOVERY_MARGIN:g} s"
                    )
        if self.checks.shares is not None and self.faults.windows:
            first = min(w.start for w in self.faults.windows)
            if first <= 0:
                raise ValueError("checks.shares is judged before the first fault; start it after 0 s")
        return self


def load_profile(path: Path) -> LoadProfile:
    """The profile in ``path``; anything wrong is one ConfigError naming the file and the key. The names
    of instances and services are the topology's to check (``harness.load._target.check_names``)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such load profile")
    data = read_document(path, Format.TOML)
    try:
        return LoadProfile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {error_line(exc.errors()[0])}") from exc  # a rule across keys names them
