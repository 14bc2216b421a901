"""A realistic chaos report from a synthetic run, for the docs' screenshot and the browser test.

Twenty seconds of orders through three users instances: latency on users-2 opens its breaker (a failed
probe round while the fault lasts, then two probes close it), then users-3 is killed, evicted and comes
back. The events are what the real processes write; the breaker figures come from the real conformance
check, so the demo shows what a run shows.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.checks._breaker_conformance import breaker_conformance
from harness.report._metadata import git_commit, harness_version
from harness.report._model import (
    Activity,
    ActivityKind,
    ActivityStatus,
    FigureSection,
    Hypothesis,
    Link,
    Metadata,
    Note,
    ProbeResult,
    ReportInput,
    ReportKind,
)
from harness.resilience import BreakerConfig
from harness.timeline import Timeline

ORIGIN = 5000.0
ORIGIN_WALL = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
END = 20.0
USERS = ("users-1", "users-2", "users-3")
BREAKER = BreakerConfig.consecutive_failures(3, 0.5, half_open_calls=2)
FAULT = (5.0, 11.0)  # latency toxic on users-2
OPENED = 5.51  # the third failed attempt to users-2 times out (attempt timeout 0.1 s)
KILLED, EVICTED, RESTARTED, LISTED_AGAIN = 14.0, 15.2, 16.5, 17.3


class _Run:
    """Builds the events of the synthetic run in time order."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.events: list[dict[str, Any]] = []

    def add(self, event: str, when: float, /, source: str = "orchestrator", **fields: Any) -> None:
        wall = (ORIGIN_WALL + timedelta(seconds=when)).isoformat()
        self.events.append({"ts": wall, "mono": ORIGIN + when, "source": source, "event": event, **fields})

    def attempt(self, at: float, instance: str, *, failed: bool, admitted: str = "closed") -> None:
        duration = 0.1 if failed else self.random.uniform(0.004, 0.02)
        status = None if failed else 200
        self.add("client.attempt", at + duration, service="users", instance=instance,
                 outcome="timeout" if failed else "status_2xx", status=status, admitted=admitted,
                 sent_at=ORIGIN + at, duration=duration, method="POST", path="/users/7/reserve")  # fmt: skip

    def breaker(self, at: float, old: str, new: str, reason: str = "") -> None:
        self.add("client.breaker_transition", at, service="users", instance="users-2", from_state=old,
                 to_state=new, reason=reason)  # fmt: skip

    def membership(self, at: float, instances: list[str], added: list[str], removed: list[str]) -> None:
        self.add("discovery.membership_changed", at, service="users", instances=instances, added=added,
                 removed=removed)  # fmt: skip


def _timeline(seed: int) -> Timeline:
    run = _Run(seed)
    run.membership(0.05, list(USERS), list(USERS), [])
    for instance in USERS:
        run.add("registry.registered", 0.01, source="registry", instance_id=instance, service="users",
                status="passing")  # fmt: skip
    run.add("fault.start", FAULT[0], source="harness", window="w1", kind="latency", instance="users-2",
            fault="latency 1000 ms downstream", at=FAULT[0])  # fmt: skip
    run.add("fault.end", FAULT[1], source="harness", window="w1", kind="latency", instance="users-2",
            at=FAULT[1], lasted=FAULT[1] - FAULT[0])  # fmt: skip
    # users-2's breaker: opens on the fault, a failed probe round, then closes once the fault is gone.
    run.breaker(OPENED, "closed", "open", "3 failures in a row")
    run.breaker(6.9, "open", "half_open")
    run.attempt(6.95, "users-2", failed=True, admitted="half_open")
    run.breaker(7.2, "half_open", "open", "a probe failed")
    run.breaker(11.3, "open", "half_open")
    run.attempt(11.35, "users-2", failed=False, admitted="half_open")
    run.attempt(11.4, "users-2", failed=False, admitted="half_open")
    run.breaker(11.45, "half_open", "closed", "2 probes succeeded")
    run.add("process.killed", KILLED, source="harness", name="users-3", pid=4242, detail="SIGKILL")
    run.add("registry.expired", EVICTED, source="registry", instance_id="users-3", service="users",
            status="critical", reason="missed heartbeats for 1 s")  # fmt: skip
    run.membership(EVICTED + 0.2, ["users-1", "users-2"], [], ["users-3"])
    run.add("process.restarted", RESTARTED, source="harness", name="users-3", pid=4377)
    run.add("registry.registered", RESTARTED + 0.6, source="registry", instance_id="users-3",
            service="users", status="passing")  # fmt: skip
    run.membership(LISTED_AGAIN, list(USERS), ["users-3"], [])
    _traffic(run)
    run.events.sort(key=lambda e: e["mono"])
    return Timeline.model_validate(
        {"origin": ORIGIN, "origin_wall": ORIGIN_WALL, "end": END, "events": run.events}
    )


def _traffic(run: _Run) -> None:
    """Orders at 20 per second, round robin over the instances the caller may call at that moment."""
    for turn in range(int((END - 0.4) * 20)):
        at = 0.1 + turn * 0.05
        usable = [i for i in USERS if _callable(i, at)]
        instance = usable[turn % len(usable)]
        in_fault = instance == "users-2" and FAULT[0] <= at < FAULT[1]
        dead = instance == "users-3" and KILLED <= at < RESTARTED + 0.6
        run.attempt(at, instance, failed=in_fault or dead)
        latency = run.random.uniform(0.012, 0.03) + (0.1 if in_fault or dead else 0.0)
        outcome = "ok" if not dead or run.random.random() < 0.5 else "error"
        run.add("traffic.request", at + latency, source="traffic", target="POST /orders", outcome=outcome,
                status=201 if outcome == "ok" else 503, latency=latency)  # fmt: skip


def _callable(instance: str, at: float) -> bool:
    if instance == "users-2" and (OPENED <= at < 11.3):  # open: no calls but the probes
        return False
    return not (instance == "users-3" and EVICTED + 0.2 <= at < LISTED_AGAIN)


def _wall(at: float) -> datetime:
    return ORIGIN_WALL + timedelta(seconds=at)


def _activity(name: str, kind: ActivityKind, start: float, end: float, output: str, **extra: Any) -> Activity:
    return Activity(name=name, kind=kind, start=_wall(start), end=_wall(end), status=ActivityStatus.SUCCEEDED,
                    output=output, **extra)  # fmt: skip


def demo_report(seed: int = 7) -> ReportInput:
    """The synthetic chaos run as a report input (realistic enough to judge the page by)."""
    timeline = _timeline(seed)
    conformance = breaker_conformance(
        timeline, service="users", instance="users-2", fault_start=FAULT[0], fault_end=FAULT[1],
        config=BREAKER, probe_round=0.5, fault="latency 1000 ms",
    )  # fmt: skip
    probes = [
        ProbeResult(name="orders p99 (ms)", value=31.0, tolerance="<= 500", held=True),
        ProbeResult(name="users instances listed", value=3, tolerance="== 3", held=True),
        ProbeResult(name="toxics left", value=0, tolerance="== 0", held=True),
    ]
    after = [probes[0].model_copy(update={"value": 284.0}), *probes[1:]]
    return ReportInput(
        title="Latency on users-2, then users-3 killed",
        kind=ReportKind.CHAOS,
        summary="The breaker towards users-2 opened within its bounds, traffic moved to users-1 and users-3, "
        "and the stack recovered after users-3 was killed.",
        timeline=timeline,
        sections=[
            FigureSection(title="Breaker users / users-2 under latency 1000 ms", figures=conformance.figures)
        ],
        hypothesis=Hypothesis(
            title="Orders stay fast and every instance comes back",
            before=probes,
            after=after,
            after_cleanup=probes,
        ),
        activities=[
            _activity(
                "background orders at 20/s", ActivityKind.ACTION, 0.1, 19.7, "394 orders", background=True
            ),
            _activity(
                "add latency toxic to users-2", ActivityKind.ACTION, 4.98, 5.0, "toxic latency_users-2"
            ),
            _activity("breaker towards users-2 is open", ActivityKind.PROBE, 5.0, 6.1, "open after 1.1 s"),
            _activity("remove toxic", ActivityKind.ACTION, 11.0, 11.02, "removed"),
            _activity("kill users-3", ActivityKind.ACTION, 13.99, 14.0, "SIGKILL pid 4242"),
            _activity("users-3 evicted", ActivityKind.PROBE, 14.0, 15.3, "evicted after 1.2 s"),
            _activity("restart users-3", ActivityKind.ACTION, 16.4, 17.1, "pid 4377, ready"),
        ],
        links=[Link(title="journal", href="journal.json"), Link(title="timeline", href="timeline.json")],
        notes=[
            Note(
                title="How latency is measured",
                text="Each attempt's duration is measured by the caller with the monotonic clock, from "
                "sending the request to the end of the response; requests are placed in time when "
                "they were sent.",
            )
        ],
        metadata=Metadata(
            seed=seed,
            harness_version=harness_version(),
            commit=git_commit(),
            command="harness chaos run chaos_experiments/demo.json",
            started=_wall(0.0),
            ended=_wall(END),
        ),
    )
