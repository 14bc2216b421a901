"""What the locustfile is told: the profile resolved against a stack (URLs, customer), as one JSON option.

The harness writes it and Locust forwards it from the master to every worker (``--harness-plan``), so a
worker on another machine needs nothing but the locustfile. The locustfile reads the same keys with the
standard library alone (it must not import the harness, which would load its whole stack of modules
into a gevent-patched process); a load-level test runs both sides together.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from harness.load._profile import JsonScalar, LoadProfile, TargetKind

PLAN_OPTION = "--harness-plan"


class PlanStage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    until: float
    users: int
    spawn_rate: float


class LocustPlan(BaseModel):
    """Everything a simulated user and the load shape need; hosts are base URLs used in turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TargetKind
    hosts: list[str] = Field(min_length=1)
    name: str  # the request's name in Locust's statistics
    method: str = "GET"
    path: str = "/health"
    body: dict[str, JsonScalar] | None = None
    expect: list[int] = Field(default_factory=list)
    customer: str | None = None  # orders and user reads: the customer the harness created
    amount: int = 1
    rate_per_user: float | None = None
    request_timeout: float = 10.0
    stages: list[PlanStage]
    events: str | None = None  # the master appends load.started / load.stopped here (a JSON-lines file)

    def option(self) -> list[str]:
        return [PLAN_OPTION, self.model_dump_json()]


def request_name(profile: LoadProfile) -> str:
    """How Locust's statistics name the requests of the profile's target."""
    match profile.target.kind:
        case TargetKind.ORDERS:
            return "POST /orders"
        case TargetKind.USER_READS:
            return "GET /users/{user_id}"
        case TargetKind.HTTP:
            return f"{profile.target.method} {profile.target.path}"


def build_plan(
    profile: LoadProfile, hosts: list[str], *, customer: str | None = None, events: str | None = None
) -> LocustPlan:
    target, load = profile.target, profile.load
    return LocustPlan(
        kind=target.kind,
        hosts=hosts,
        name=request_name(profile),
        method=target.method,
        path=target.path,
        body=target.body,
        expect=target.expect,
        customer=customer,
        amount=target.amount,
        rate_per_user=load.rate_per_user,
        request_timeout=load.request_timeout,
        stages=[
            PlanStage(until=s.until, users=s.users, spawn_rate=s.spawn_rate) for s in load.planned_stages()
        ],
        events=events,
    )
