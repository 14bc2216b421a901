"""The Locust side of ``harness load run``: one user class sending the profile's requests, and a load shape
playing its stages. Locust loads this file in its own processes; the harness and pytest never import it
(importing Locust monkey-patches the interpreter with gevent).

The plan arrives as one JSON option, ``--harness-plan``, which Locust's master forwards to its workers, so
a worker on another machine needs only this file (``harness load worker`` finds it). Only the standard
library and Locust are imported here. Workers Locust forks die with their master (PR_SET_PDEATHSIG, set
right after the fork), and the master and ``harness load worker``'s Locust die with the harness process
that started them, so none outlives the run, even when the harness is killed.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import signal
import sys
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from locust import FastHttpUser, LoadTestShape, events, task
from locust import runners as locust_runners
from locust import stats as locust_stats
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.user.wait_time import constant_throughput

PLAN_OPTION = "--harness-plan"  # the same name as harness.load._plan.PLAN_OPTION
_PR_SET_PDEATHSIG = 1

# The history CSV is the harness's live view of the run: flush every row, not every 5 s; and workers
# report to the master every second, not every 3 s, so each row of a distributed run has fresh counts.
locust_stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0
locust_runners.WORKER_REPORT_INTERVAL = 1.0


@dataclass(frozen=True)
class Plan:
    """The keys of ``harness.load._plan.LocustPlan`` this side reads."""

    kind: str
    hosts: tuple[str, ...]
    name: str
    method: str
    path: str
    body: str | None
    expect: frozenset[int]
    customer: str | None
    amount: int
    rate_per_user: float | None
    request_timeout: float
    stages: tuple[tuple[float, int, float], ...]
    events: str | None

    @classmethod
    def of(cls, environment: Environment) -> Plan:
        text = getattr(environment.parsed_options, "harness_plan", "") if environment.parsed_options else ""
        if not text:
            raise RuntimeError(f"this locustfile runs under `harness load run`; {PLAN_OPTION} is missing")
        raw: dict[str, Any] = json.loads(text)
        body = raw.get("body")
        return cls(
            kind=str(raw["kind"]),
            hosts=tuple(str(h).rstrip("/") for h in raw["hosts"]),
            name=str(raw["name"]),
            method=str(raw.get("method", "GET")),
            path=str(raw.get("path", "/")),
            body=None if body is None else json.dumps(body),
            expect=frozenset(int(s) for s in raw.get("expect") or []),
            customer=raw.get("customer"),
            amount=int(raw.get("amount", 1)),
            rate_per_user=None if raw.get("rate_per_user") is None else float(raw["rate_per_user"]),
            request_timeout=float(raw.get("request_timeout", 10.0)),
            stages=tuple((float(s["until"]), int(s["users"]), float(s["spawn_rate"])) for s in raw["stages"]),
            events=raw.get("events"),
        )


class _Hook(Protocol):
    def add_listener(self, handler: Callable[..., None]) -> Callable[..., None]: ...


class _Answer(Protocol):
    """What the judges use of Locust's (untyped) response context manager."""

    status_code: int

    def json(self) -> Any: ...
    def success(self) -> None: ...
    def failure(self, exc: object) -> None: ...


def _on(hook: object) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``@_on(events.init)``: Locust's event hooks, typed for mypy."""
    return cast(_Hook, hook).add_listener


def _die_with_parent() -> None:
    """In a process Locust forked (a worker of ``--processes``), right after the fork: SIGTERM when the
    master dies, even by SIGKILL; and at once if it died before this ran. Without it a worker forked just
    before its master was killed would wait for a master that is gone for a long time."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != _LOADED_BY:
        os.kill(os.getpid(), signal.SIGTERM)


_LOADED_BY = os.getpid()  # the process that loaded this file: the master, for the workers it forks
os.register_at_fork(after_in_child=_die_with_parent)


def _record(environment: Environment, event: str, **fields: Any) -> None:
    """Append one event to the run's events folder (the master only: workers may be elsewhere)."""
    if isinstance(environment.runner, WorkerRunner):
        return
    plan = Plan.of(environment)
    if plan.events is None:
        return
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
        "mono": time.monotonic(),
        "source": "locust",
        "event": event,
        **fields,
    }
    with open(plan.events, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, separators=(",", ":")) + "\n")


@_on(events.init_command_line_parser)
def _options(parser: LocustArgumentParser, **_kwargs: Any) -> None:
    parser.add_argument(
        PLAN_OPTION,
        type=str,
        default="",
        include_in_web_ui=False,
        help="The run's plan as JSON, written by `harness load run`.",
    )


@_on(events.test_start)
def _started(environment: Environment, **_kwargs: Any) -> None:
    _record(environment, "load.started")


_USERS: weakref.WeakSet[HarnessUser] = weakref.WeakSet()
"""Every user this process made: a user Locust kills rather than stops never runs ``on_stop``."""


@_on(events.quitting)
def _close_connections(environment: Environment, **_kwargs: Any) -> None:
    """Close every user's connections before Locust exits, however its users ended."""
    for user in list(_USERS):
        user.client.client.close()


@_on(events.test_stop)
def _stopped(environment: Environment, **_kwargs: Any) -> None:
    _record(environment, "load.stopped", requests=environment.stats.total.num_requests)


class HarnessUser(FastHttpUser):
    """Sends the plan's request over and over: at ``rate_per_user`` per second, or as fast as answered."""

    host = "http://127.0.0.1"  # the plan's hosts are absolute; Locust still wants one

    def __init__(self, environment: Environment) -> None:
        self.plan = Plan.of(environment)
        self.network_timeout = self.plan.request_timeout
        self.connection_timeout = self.plan.request_timeout
        super().__init__(environment)
        _USERS.add(self)
        self._turn = itertools.count(int(uuid.uuid4().int % len(self.plan.hosts)))
        rate = self.plan.rate_per_user
        self._pacing: Callable[[Any], float] | None = None if rate is None else constant_throughput(rate)

    def wait_time(self) -> float:
        return 0.0 if self._pacing is None else self._pacing(self)

    def on_stop(self) -> None:
        """Close this user's connections: a stopped user must not leave its sockets to the collector."""
        self.client.client.close()

    @task
    def send(self) -> None:
        plan = self.plan
        host = plan.hosts[next(self._turn) % len(plan.hosts)]
        if plan.kind == "orders":
            order = {"user_id": plan.customer, "amount": plan.amount}
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            with self.client.post(
                f"{host}/orders", json=order, headers=headers, name=plan.name, catch_response=True
            ) as answer:
                _judge_order(answer)
        elif plan.kind == "user_reads":
            with self.client.get(
                f"{host}/users/{plan.customer}", name=plan.name, catch_response=True
            ) as answer:
                _judge_status(answer, frozenset({200}))
        else:
            headers = {"Content-Type": "application/json"} if plan.body is not None else {}
            with self.client.request(
                plan.method,
                f"{host}{plan.path}",
                name=plan.name,
                data=plan.body,
                headers=headers,
                catch_response=True,
            ) as answer:
                _judge_status(answer, plan.expect)


def _judge_order(answer: _Answer) -> None:
    """An order succeeds when it is COMPLETED (201, or 200 for a replayed key)."""
    if answer.status_code not in (200, 201):
        answer.failure(f"HTTP {answer.status_code}")
        return
    try:
        state = answer.json().get("state")
    except ValueError:
        answer.failure("not JSON")
        return
    if state == "COMPLETED":
        answer.success()
    else:
        answer.failure(f"order {state}")


def _judge_status(answer: _Answer, expect: frozenset[int]) -> None:
    ok = answer.status_code in expect if expect else 200 <= answer.status_code < 300
    if ok:
        answer.success()
    else:
        answer.failure(f"HTTP {answer.status_code}")


class HarnessShape(LoadTestShape):
    """The plan's stages: (users, spawn rate) until each stage's end, then the run stops."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        elapsed = time.perf_counter() - float(self.start_time)
        for until, users, spawn_rate in Plan.of(self.runner.environment).stages:
            if elapsed < until:
                return users, spawn_rate
        return None
