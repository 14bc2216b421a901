"""``harness check saga``: a Jepsen-style run of the order saga under faults, checked independently.

A fresh stack; many customers with seeded credit; ``orders`` concurrent ``POST /orders`` at a steady
rate, each recorded as the client saw it; meanwhile a seeded fault schedule puts random toxics and
partitions on the participants' proxies, toxics that cut requests and answers mid-message, and SIGKILLs
the orchestrator ``kills`` times (restarting it).
Then the faults end, every saga is given time to finish, every key is replayed once, the stack stops,
and the checker reads the three services' databases and the client history: every anomaly is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from harness.checks._history import CallOutcome, OrderCall, check_history
from harness.checks._saga import FINAL, Anomaly, AnomalyKind, OrderRecord, find_anomalies
from harness.checks._saga_sources import outbox_pending, read_saga_databases
from harness.errors import ConfigError, EnvironmentUnavailable
from harness.events import EventLog
from harness.faults import (
    FaultApplier,
    FaultKind,
    FaultSchedule,
    FaultSpec,
    FaultWindow,
    RandomFaults,
    ScheduleRunner,
    Stream,
    random_schedule,
)
from harness.stack import Stack, Topology, fast_topology
from harness.stack._faults import StackInjector

Progress = Callable[[str], None]
RESULT_VERSION = 1

FAST_TOPOLOGY = fast_topology()


class SagaCheckConfig(BaseModel):
    """What one run does; every figure is bounded so a run always ends by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orders: int = Field(default=1000, ge=1, le=100_000)
    kills: int = Field(default=5, ge=0, le=100)
    seed: int = 1
    customers: int | None = Field(
        default=None, ge=1, le=10_000, description="default: orders / 10, at least 5"
    )
    rate: float = Field(default=20.0, gt=0, le=1000, description="orders started per second")
    concurrency: int = Field(default=32, ge=1, le=1000)
    fault_windows: int | None = Field(default=None, ge=0, le=10_000, description="default: 1 per 2 s")
    cut_windows: int | None = Field(
        default=None, ge=0, le=10_000, description="windows that cut messages mid-way; default: 1 per 4 s"
    )
    request_timeout: float = Field(default=15.0, gt=0)
    settle_timeout: float = Field(default=120.0, gt=0)
    max_needs_attention: int = Field(default=0, ge=0)

    @property
    def customer_count(self) -> int:
        return self.customers or max(5, self.orders // 10)

    @property
    def duration(self) -> float:
        """How long orders are placed (and faults applied)."""
        return self.orders / self.rate


class CheckFigure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    measured: int
    bound: int

    @property
    def holds(self) -> bool:
        return self.measured <= self.bound


class SagaCheckResult(BaseModel):
    """Everything a run measured; ``result.json`` in the report folder."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = RESULT_VERSION
    config: SagaCheckConfig
    wall_seconds: float
    calls: dict[str, int]  # by outcome, placing phase
    final_states: dict[str, int]
    kills_applied: int
    faults_applied: int
    fault_failures: list[str]
    figures: list[CheckFigure]
    anomalies: list[str]
    dead_letters: int

    @property
    def passed(self) -> bool:
        return all(f.holds for f in self.figures)


@dataclass
class _Tally:
    """What the client has seen so far, for progress lines."""

    sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def run_saga_check(
    config: SagaCheckConfig,
    *,
    workdir: Path,
    report_dir: Path,
    topology: Topology = FAST_TOPOLOGY,
    progress: Progress = lambda _line: None,
) -> SagaCheckResult:
    """Run the check; the report folder gets ``schedule.json``, ``history.jsonl`` and ``result.json``."""
    if workdir.exists() and any(workdir.iterdir()):
        raise ConfigError(f"workdir {workdir} is not empty; the check needs a fresh stack")
    if topology.service("orchestrator").instances != 1 or topology.service("users").instances < 1:
        raise ConfigError("the saga check needs one orchestrator and at least one users instance")
    began = time.monotonic()
    report_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    calls: list[OrderCall] = []
    with Stack(topology, workdir, progress=progress) as stack:
        if stack.toxiproxy is None:
            raise ConfigError("the saga check injects faults through the fault proxies; turn proxies on")
        participants = [name for kind in ("users", "notifications") for name in _names(stack, kind)]
        drawn = random_schedule(
            config.seed,
            config.duration,
            RandomFaults(instances=participants, windows=_windows(config)),
            kills=config.kills,
            kill_instance="orchestrator-1",
        )
        cuts = cut_windows(config.seed, config.duration, participants, _cuts(config), clear_of=drawn.windows)
        windows = sorted((*drawn.windows, *cuts), key=lambda w: (w.start, w.name))
        schedule = FaultSchedule(seed=drawn.seed, windows=tuple(windows))
        schedule.save(report_dir / "schedule.json")
        progress(f"{len(schedule.windows)} fault windows over {config.duration:.1f}s ({len(cuts)} cutting "
                 f"messages mid-way, {config.kills} orchestrator kills), seed {config.seed}")  # fmt: skip
        users_url = stack.instances("users")[0].url
        orchestrator_url = stack.url("orchestrator-1")
        customers = _create_customers(users_url, config.customer_count, rng)
        # The customers' welcome notifications go out first: a fault must meet only the orders' calls.
        _drained(stack.database("users"), timeout=30.0)
        plan = [(uuid.UUID(int=rng.getrandbits(128)).hex, rng.choice(customers), rng.randint(10, 300))
                for _ in range(config.orders)]  # fmt: skip
        events = EventLog("harness", stack.event_log("harness-check"))
        applier = FaultApplier(StackInjector(stack), events, ledger=workdir / "faults.json")
        runner = ScheduleRunner(schedule, applier)
        tally = _Tally()
        client = _Cancellable(
            lambda: _place(plan, orchestrator_url, config, calls, tally, began, runner, progress),
            name="saga-check-client",
        ).start()
        try:
            runner.run()  # in this thread: the orchestrator's restarts are children of a lasting thread
        except BaseException:  # Ctrl-C or SIGTERM: no order is placed after it; the stack stops after this
            client.cancel()
            raise
        finally:
            runner.stop()
            client.join(config.duration + config.request_timeout * 2 + 30)
            events.close()
        if client.is_alive():
            raise EnvironmentUnavailable("the order client did not finish in time")
        if not stack.processes["orchestrator-1"].is_running():
            stack.restart("orchestrator-1")
        progress(f"faults over; {tally.sent} orders sent ({_counts(tally.outcomes)}); waiting for every saga")
        _settle(orchestrator_url, config.settle_timeout)
        replays = asyncio.run(_replay(plan, orchestrator_url, config, began))
        calls += replays
        progress(f"replayed {len(replays)} keys ({_counts(Counter(c.outcome.value for c in replays))})")
        _settle(orchestrator_url, config.settle_timeout)
        orchestrator_db, users_db = stack.database("orchestrator"), stack.database("users")
        notifications_db = stack.database("notifications")
    snapshot = read_saga_databases(orchestrator_db, users_db, notifications_db)
    anomalies = find_anomalies(snapshot) + check_history(calls, snapshot)
    _write_history(report_dir / "history.jsonl", calls)
    result = _result(config, began, calls, snapshot.orders, anomalies, runner, len(snapshot.dead_letters))
    (report_dir / "result.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return result


def _names(stack: Stack, kind: str) -> list[str]:
    return [p.name for p in stack.instances(kind)]


def _windows(config: SagaCheckConfig) -> int:
    if config.fault_windows is not None:
        return config.fault_windows
    return max(2, round(config.duration / 2))


def _cuts(config: SagaCheckConfig) -> int:
    if config.cut_windows is not None:
        return config.cut_windows
    return max(1, round(config.duration / 4))


_CUTS = (
    (FaultKind.LIMIT_DATA, Stream.UPSTREAM),  # a request cut: the connection closes after N bytes of it
    (FaultKind.LIMIT_DATA, Stream.DOWNSTREAM),  # an answer cut: the call landed, its answer did not
    (FaultKind.RESET_PEER, Stream.UPSTREAM),  # a request's first bytes lost, the rest let through at the end
)


def cut_windows(
    seed: int, duration: float, instances: list[str], count: int, *, clear_of: Sequence[FaultWindow] = ()
) -> list[FaultWindow]:
    """Seeded windows of toxics that break HTTP messages mid-way on ``instances``' proxies, each placed
    clear of the ``clear_of`` windows on its instance and of every kill where a few draws allow (a cut
    behind a partition, or while the orchestrator is down, would meet no call).

    ``limit_data`` closes a connection after 1 to 1,200 bytes in one direction (counted per connection, so
    the first request on it may pass and a later one is cut, in its headers or its body). A garbling cut
    is two windows with the same times, applied in name order: a ``slicer`` upstream (pieces of 2 to 16
    bytes), then a ``reset_peer`` upstream held for the window, which swallows the first piece a connection
    sends and holds the rest; when the window ends (within 0.2 to 1 s) the rest goes through, and the
    server's HTTP layer answers the callers still waiting with a plain-text 400 (a protocol-level answer,
    not a refusal). No window is drawn for an empty instance list."""
    rng = random.Random(f"saga-check-cuts-{seed}")
    windows: list[FaultWindow] = []
    for index in range(count if instances else 0):
        kind, stream = rng.choice(_CUTS)
        # A garbling window is shorter than an attempt's timeout (2 s towards the participants), so the
        # calls it holds are still waiting when it ends, and meet the 400.
        length = rng.uniform(0.5, 3.0) if kind is FaultKind.LIMIT_DATA else rng.uniform(0.2, 1.0)
        for _ in range(_PLACING_DRAWS):
            instance = rng.choice(instances)
            start = rng.uniform(0.0, max(0.0, duration - length))
            if not any(_meets(w, instance, start, start + length) for w in (*clear_of, *windows)):
                break
        times = {"start": round(start, 3), "end": round(start + length, 3)}
        if kind is FaultKind.LIMIT_DATA:
            spec = FaultSpec(kind=kind, instance=instance, attributes={"bytes": rng.randint(1, 1200)},
                             stream=stream)  # fmt: skip
            windows.append(FaultWindow(name=f"c{index:03d}-{kind.value}-{stream.value}", fault=spec, **times))
            continue
        # Small pieces: the first is part of the request line, and uvicorn's 400 mostly gets back whole.
        pieces = {"average_size": rng.randint(2, 16), "size_variation": 0, "delay": 0}
        slicer = FaultSpec(kind=FaultKind.SLICER, instance=instance, attributes=pieces, stream=stream)
        # reset_peer's timeout outlasts the window: removing the toxic is what lets the held bytes through.
        lose = FaultSpec(kind=kind, instance=instance, attributes={"timeout": 3_600_000}, stream=stream)
        windows.append(FaultWindow(name=f"c{index:03d}a-slicer-{stream.value}", fault=slicer, **times))
        windows.append(FaultWindow(name=f"c{index:03d}b-{kind.value}-{stream.value}", fault=lose, **times))
    return windows


_PLACING_DRAWS = 20


def _meets(window: FaultWindow, instance: str, start: float, end: float) -> bool:
    """Does ``window`` overlap [start, end) on ``instance``, or anywhere when it is a kill?"""
    there = window.fault.instance == instance or window.fault.kind is FaultKind.KILL
    return there and window.start < end and start < window.until


def _drained(users_db: Path, timeout: float) -> None:
    """Until the users' outbox has nothing left to deliver, or ``timeout`` (the checker counts the rest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if outbox_pending(users_db) == 0:
                return
        except sqlite3.Error:  # busy or not created yet: look again
            pass
        time.sleep(0.1)


def _create_customers(users_url: str, count: int, rng: random.Random) -> list[str]:
    """Customers with credit drawn so that some orders run out of it (and compensate)."""
    customers = [f"c{index:05d}-{rng.getrandbits(24):06x}" for index in range(count)]
    with httpx.Client(timeout=10.0, trust_env=False) as http:
        for customer in customers:
            answer = http.post(f"{users_url}/users", json={
                "id": customer, "name": f"Customer {customer}", "email": f"{customer}@example.test",
                "credit": rng.randint(500, 3000)})  # fmt: skip
            if answer.status_code != 201:
                raise EnvironmentUnavailable(f"creating customer {customer}: HTTP {answer.status_code}")
    return customers


async def _place(
    plan: list[tuple[str, str, int]],
    url: str,
    config: SagaCheckConfig,
    calls: list[OrderCall],
    tally: _Tally,
    began: float,
    runner: ScheduleRunner,
    progress: Progress,
) -> None:
    """Start one order every 1/rate seconds, at most ``concurrency`` in flight; report every 2 s."""
    slots = asyncio.Semaphore(config.concurrency)
    start = time.monotonic()
    async with _client(config) as http:

        async def one(key: str, user: str, amount: int) -> None:
            try:
                call = await _post(http, url, key, user, amount, "place", began)
            finally:
                slots.release()
            calls.append(call)
            tally.outcomes[call.outcome.value] += 1

        async def report() -> None:
            while True:
                await asyncio.sleep(2.0)
                active = ", ".join(w.fault.describe() for w in runner.active()) or "none"
                progress(f"t={time.monotonic() - start:5.1f}s sent {tally.sent}/{len(plan)} "
                         f"({_counts(tally.outcomes)}) | faults: {active}")  # fmt: skip

        reporter = asyncio.create_task(report())
        tasks = []
        for index, (key, user, amount) in enumerate(plan):
            await asyncio.sleep(max(0.0, start + index / config.rate - time.monotonic()))
            await slots.acquire()
            tally.sent += 1
            tasks.append(asyncio.create_task(one(key, user, amount)))
        await asyncio.gather(*tasks)
        reporter.cancel()


class _Cancellable:
    """A coroutine run in a thread of its own, with its own event loop, that another thread can cancel."""

    def __init__(self, make: Callable[[], Coroutine[Any, Any, None]], *, name: str) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name=name)

    def start(self) -> _Cancellable:
        self._thread.start()
        self._running.wait(5.0)
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._make())
        self._running.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def cancel(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()


async def _replay(
    plan: list[tuple[str, str, int]], url: str, config: SagaCheckConfig, began: float
) -> list[OrderCall]:
    """Every key once more, as a client retrying would: the same key must give the same order."""
    slots = asyncio.Semaphore(config.concurrency)
    async with _client(config) as http:

        async def one(key: str, user: str, amount: int) -> OrderCall:
            async with slots:
                return await _post(http, url, key, user, amount, "replay", began)

        return list(await asyncio.gather(*(one(*item) for item in plan)))


def _client(config: SagaCheckConfig) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    return httpx.AsyncClient(timeout=config.request_timeout, limits=limits, trust_env=False)


async def _post(
    http: httpx.AsyncClient, url: str, key: str, user: str, amount: int, phase: str, began: float
) -> OrderCall:
    invoked = time.monotonic() - began
    base = {"key": key, "user_id": user, "amount": amount, "phase": phase, "invoked": round(invoked, 4)}
    try:
        answer = await http.post(f"{url}/orders", json={"user_id": user, "amount": amount},
                                 headers={"Idempotency-Key": key})  # fmt: skip
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never sent: certainly did not happen
        return OrderCall(**base, completed=_since(began), outcome=CallOutcome.FAIL, error=repr(exc))
    except httpx.HTTPError as exc:  # sent, no answer: may have happened
        return OrderCall(**base, completed=_since(began), outcome=CallOutcome.UNKNOWN, error=repr(exc))
    if answer.status_code in (200, 201, 202):
        body = answer.json()
        return OrderCall(**base, completed=_since(began), outcome=CallOutcome.OK, status=answer.status_code,
                         order_id=body["order_id"], state=body["state"])  # fmt: skip
    outcome = CallOutcome.FAIL if 400 <= answer.status_code < 500 else CallOutcome.UNKNOWN
    return OrderCall(**base, completed=_since(began), outcome=outcome, status=answer.status_code,
                     error=answer.text[:200])  # fmt: skip


def _since(began: float) -> float:
    return round(time.monotonic() - began, 4)


def _settle(url: str, timeout: float) -> None:
    """Until the orchestrator reports no saga that still moves on by itself, or ``timeout``."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                counts = http.get(f"{url}/orders", params={"limit": 1}).json()["counts"]
            except (httpx.HTTPError, ValueError, KeyError):
                counts = {}
            else:
                if all(state in FINAL for state in counts):
                    return
            time.sleep(0.25)
    # not settled: the checker reports what is stuck; nothing to raise here


def _counts(outcomes: Counter[str]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(outcomes.items())) or "none yet"


def _write_history(path: Path, calls: list[OrderCall]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for call in sorted(calls, key=lambda c: c.invoked):
            out.write(call.model_dump_json() + "\n")


def _result(
    config: SagaCheckConfig,
    began: float,
    calls: list[OrderCall],
    orders: list[OrderRecord],
    anomalies: list[Anomaly],
    runner: ScheduleRunner,
    dead_letters: int,
) -> SagaCheckResult:
    states = Counter(o.state for o in orders)
    by_kind = Counter(a.kind for a in anomalies)
    figures = [CheckFigure(name=kind.value, measured=by_kind[kind], bound=0) for kind in AnomalyKind]
    figures.append(CheckFigure(name="needs attention", measured=states["NEEDS_ATTENTION"],
                               bound=config.max_needs_attention))  # fmt: skip
    figures.append(CheckFigure(name="dead letters", measured=dead_letters, bound=0))
    applied = runner.events.of_type("fault.start")
    return SagaCheckResult(
        config=config,
        wall_seconds=round(time.monotonic() - began, 2),
        calls=dict(Counter(c.outcome.value for c in calls if c.phase == "place")),
        final_states=dict(states),
        kills_applied=sum(e["kind"] == "kill" for e in applied),
        faults_applied=len(applied),
        fault_failures=list(runner.failures),
        figures=figures,
        anomalies=[a.message for a in anomalies],
        dead_letters=dead_letters,
    )
