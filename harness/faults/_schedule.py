"""The fault schedule: which fault, on which instance, from when to when. One mechanism for every job.

A schedule is plain data (seeded, so the same seed gives the same schedule, and saved with a run so it
can be replayed). ``ScheduleRunner`` plays it against a ``FaultInjector`` (toxics and partitions through
Toxiproxy, process faults through the stack), records each fault window as events, keeps a ledger file
of what is applied right now (so a crashed run's faults can be removed later), and removes everything it
applied when it stops, whatever stopped it. A fault held for a duration (``harness fault --for``) has its
end in the ledger too, so whoever reads the ledger after that time ends it if its holder is gone.
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ConfigError
from harness.events import EventLog
from harness.faults._client import ToxiproxyClient
from harness.faults._errors import FaultNotApplied, ProxyNotFound, ToxicNotFound
from harness.faults._models import Stream, ToxicType


class FaultKind(enum.StrEnum):
    """Toxics, a partition (the instance's proxy disabled), and faults of the instance's process."""

    LATENCY = ToxicType.LATENCY.value
    BANDWIDTH = ToxicType.BANDWIDTH.value
    SLOW_CLOSE = ToxicType.SLOW_CLOSE.value
    TIMEOUT = ToxicType.TIMEOUT.value
    RESET_PEER = ToxicType.RESET_PEER.value
    SLICER = ToxicType.SLICER.value
    LIMIT_DATA = ToxicType.LIMIT_DATA.value
    HTTP_ERROR = ToxicType.HTTP_ERROR.value  # per HTTP request: an extension of the embedded fault proxy
    HTTP_LATENCY = ToxicType.HTTP_LATENCY.value
    DOWN = "down"  # the instance's proxy refuses connections: a partition
    KILL = "kill"  # SIGKILL at the start, restarted at the end
    STOP = "stop"  # SIGSTOP at the start, SIGCONT at the end

    @property
    def is_toxic(self) -> bool:
        return self.value in ToxicType.__members__.values()

    @property
    def is_process(self) -> bool:
        return self in (FaultKind.KILL, FaultKind.STOP)


class FaultSpec(BaseModel):
    """One fault on one instance (what, not when)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    instance: str = Field(min_length=1, max_length=63)
    attributes: dict[str, int | str] = Field(default_factory=dict)  # strings: the HTTP toxics' filters, body
    stream: Stream = Stream.DOWNSTREAM
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0)

    def describe(self) -> str:
        attributes = " ".join(f"{k}={v}" for k, v in sorted(self.attributes.items()))
        toxicity = "" if self.toxicity == 1.0 else f" toxicity={self.toxicity:g}"
        return f"{self.kind.value}{' ' + attributes if attributes else ''}{toxicity} on {self.instance}"


class FaultWindow(BaseModel):
    """A fault from ``start`` to ``end`` seconds after the schedule starts (``end`` None: until cleanup)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    fault: FaultSpec
    start: float = Field(ge=0.0)
    end: float | None = None

    @property
    def until(self) -> float:
        return math.inf if self.end is None else self.end


SCHEDULE_VERSION = 1


class FaultSchedule(BaseModel):
    """Every fault window of a run, in start order, and the seed that drew them (if drawn)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEDULE_VERSION
    seed: int | None = None
    windows: tuple[FaultWindow, ...] = ()

    def model_post_init(self, _context: object) -> None:
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError("fault window names must be unique")
        for window in self.windows:
            if window.end is not None and window.end <= window.start:
                raise ValueError(f"window {window.name}: end {window.end} is not after start {window.start}")
        exclusive = [w for w in self.windows if w.fault.kind in (FaultKind.DOWN, *_PROCESS)]
        for a in exclusive:
            for b in exclusive:
                if a.name < b.name and a.fault.instance == b.fault.instance and _overlap(a, b):
                    raise ValueError(
                        f"windows {a.name} and {b.name} overlap on {a.fault.instance}; a partition or "
                        "process fault cannot be applied twice at once"
                    )

    @property
    def duration(self) -> float:
        """When the last window ends (its start, for windows open until cleanup)."""
        return max((w.end if w.end is not None else w.start for w in self.windows), default=0.0)

    def active_at(self, t: float) -> list[FaultWindow]:
        return [w for w in self.windows if w.start <= t < w.until]

    def instances(self) -> set[str]:
        return {w.fault.instance for w in self.windows}

    def save(self, path: Path) -> None:
        _write_atomically(path, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: Path) -> FaultSchedule:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


_PROCESS = (FaultKind.KILL, FaultKind.STOP)


def _overlap(a: FaultWindow, b: FaultWindow) -> bool:
    return a.start < b.until and b.start < a.until


@dataclass(frozen=True)
class RandomFaults:
    """How ``random_schedule`` draws toxic and partition windows."""

    instances: Sequence[str]
    kinds: Sequence[FaultKind] = (FaultKind.LATENCY, FaultKind.TIMEOUT, FaultKind.RESET_PEER, FaultKind.DOWN)
    windows: int = 8
    length: tuple[float, float] = (0.5, 3.0)  # seconds, drawn uniformly
    latency_ms: tuple[int, int] = (100, 1500)


def random_schedule(
    seed: int,
    duration: float,
    faults: RandomFaults,
    *,
    kills: int = 0,
    kill_instance: str | None = None,
    restart_after: tuple[float, float] = (0.2, 1.0),
) -> FaultSchedule:
    """Seeded windows within ``duration`` seconds, plus ``kills`` SIGKILLs of ``kill_instance`` (each
    restarted after a draw from ``restart_after``), spread so that no two overlap."""
    if kills and kill_instance is None:
        raise ValueError("kills need kill_instance")
    rng = random.Random(seed)
    windows: list[FaultWindow] = []
    busy: dict[str, list[tuple[float, float]]] = {}
    for index in range(faults.windows if faults.instances else 0):
        instance = rng.choice(list(faults.instances))
        kind = rng.choice(list(faults.kinds))
        length = rng.uniform(*faults.length)
        start = rng.uniform(0.0, max(0.0, duration - length))
        taken = busy.get(instance, [])
        if kind is FaultKind.DOWN and any(s < start + length and start < e for s, e in taken):
            kind = FaultKind.LATENCY  # one partition per instance at a time
        attributes = _random_attributes(rng, kind, faults)
        if kind is FaultKind.DOWN:
            busy.setdefault(instance, []).append((start, start + length))
        spec = FaultSpec(kind=kind, instance=instance, attributes=attributes)
        windows.append(FaultWindow(name=f"w{index:03d}-{kind.value}", fault=spec, start=round(start, 3),
                                   end=round(start + length, 3)))  # fmt: skip
    if kill_instance is not None:
        slots = sorted(rng.uniform(0.1, 0.9) * duration for _ in range(kills))
        previous_end = 0.0
        for index, at in enumerate(slots):
            start = max(at, previous_end + 0.5)
            end = start + rng.uniform(*restart_after)
            previous_end = end
            spec = FaultSpec(kind=FaultKind.KILL, instance=kill_instance)
            windows.append(FaultWindow(name=f"k{index:03d}-kill", fault=spec, start=round(start, 3),
                                       end=round(end, 3)))  # fmt: skip
    windows.sort(key=lambda w: (w.start, w.name))
    return FaultSchedule(seed=seed, windows=tuple(windows))


def _random_attributes(rng: random.Random, kind: FaultKind, faults: RandomFaults) -> dict[str, int]:
    match kind:
        case FaultKind.LATENCY:
            return {"latency": rng.randint(*faults.latency_ms), "jitter": rng.randint(0, 50)}
        case FaultKind.TIMEOUT:
            return {"timeout": 0}  # hold the connection, pass nothing, until removed
        case FaultKind.BANDWIDTH:
            return {"rate": rng.randint(1, 64)}
        case FaultKind.SLICER:
            return {"average_size": rng.randint(1, 64), "size_variation": 0, "delay": rng.randint(0, 2000)}
        case _:
            return {}


class FaultInjector(Protocol):
    """Applies and removes one window's fault; removing what is already gone is not an error."""

    def apply(self, window: FaultWindow, *, expires_in: float | None = None) -> bool:
        """Apply the fault; with ``expires_in`` (seconds), ask whatever holds it to end it then by itself.
        True when it will (the embedded fault proxy does; a real Toxiproxy, or a process fault, does not)."""
        ...

    def remove(self, window: FaultWindow) -> None: ...


class ToxiproxyInjector:
    """Toxics and partitions through any Toxiproxy API (the embedded server or a real one); each toxic is
    named after its window, so several windows on one proxy never collide. A fault with an expiry asks the
    server to end it then by itself: the embedded server does, a real Toxiproxy ignores the request."""

    def __init__(self, client: ToxiproxyClient) -> None:
        self.client = client

    def apply(self, window: FaultWindow, *, expires_in: float | None = None) -> bool:
        fault = window.fault
        if fault.kind.is_process:
            raise ConfigError(f"{fault.describe()}: a process fault needs the stack, not only Toxiproxy")
        expires_ms = math.ceil(expires_in * 1000) if expires_in is not None else None
        if fault.kind is FaultKind.DOWN:
            proxy = self.client.update_proxy(fault.instance, enabled=False, expires_in=expires_ms)
            left = proxy.info.expires_in
        else:
            toxic = self.client.add_toxic(
                fault.instance, fault.kind.value, stream=fault.stream, toxicity=fault.toxicity,
                name=window.name, attributes=fault.attributes, expires_in=expires_ms,
            )  # fmt: skip
            left = toxic.expires_in
        return expires_ms is not None and left is not None  # the answer says how long is left

    def remove(self, window: FaultWindow) -> None:
        fault = window.fault
        if fault.kind is FaultKind.DOWN:
            with contextlib.suppress(ProxyNotFound):  # the proxy is gone: nothing is down any more
                self.client.update_proxy(fault.instance, enabled=True)
            return
        with contextlib.suppress(ToxicNotFound, ProxyNotFound):
            self.client.remove_toxic(fault.instance, window.name)


class FaultEnd(BaseModel):
    """When a fault held for a duration ends, and whether the fault proxy ends it itself (then whoever finds
    it over only strikes it from the ledger; otherwise they remove it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float  # wall clock, seconds since the epoch: the ledger is read by other processes
    by_proxy: bool = False


@dataclass
class AppliedFault:
    window: FaultWindow
    applied_at: float  # monotonic
    end: FaultEnd | None = None  # None: applied until removed


class FaultLedger(BaseModel):
    """The ledger file: the process that wrote it last, the windows applied now, and the end of those held
    for a duration, by window name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    applied: tuple[FaultWindow, ...] = ()
    ends: dict[str, FaultEnd] = Field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> FaultLedger:
        """The ledger at ``path``; an empty one when there is none."""
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(pid=0)

    def expired(self, now: float) -> list[FaultWindow]:
        """The windows whose end is at or before ``now`` (wall clock)."""
        return [w for w in self.applied if (end := self.ends.get(w.name)) is not None and end.at <= now]


class FaultApplier:
    """Applies and removes fault windows on demand, as events, with a ledger; the one place that does.

    ``ledger`` (a JSON file) always lists the windows applied right now, so a run that dies leaves a
    record of what to remove. A fault that cannot be applied or removed is recorded (``failures`` and a
    ``fault.failed`` event) and raised. Thread-safe: chaos actions may run in background threads.
    """

    def __init__(
        self,
        injector: FaultInjector,
        events: EventLog,
        *,
        ledger: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.injector = injector
        self.events = events
        self.ledger = ledger
        self.clock = clock
        self.applied: dict[str, AppliedFault] = {}
        self.failures: list[str] = []
        self._lock = threading.RLock()

    def apply(self, window: FaultWindow, *, at: float | None = None, expires_at: float | None = None) -> None:
        """Apply ``window`` now; ``at`` is the time since its schedule began, for the record; ``expires_at``
        (wall clock): when it is to end, for the ledger (and for a fault proxy that ends it itself)."""
        with self._lock:
            if window.name in self.applied:
                raise ConfigError(f"fault {window.name} is already applied")
            expires_in = None if expires_at is None else max(0.001, expires_at - time.time())
            try:
                by_proxy = self.injector.apply(window, expires_in=expires_in)
            except Exception as exc:
                self._failed(window, str(exc))
                raise
            end = None if expires_at is None else FaultEnd(at=expires_at, by_proxy=by_proxy)
            self.applied[window.name] = AppliedFault(window, self.clock(), end)
            self._write_ledger()
        self.events.emit("fault.start", window=window.name, kind=window.fault.kind.value,
                         instance=window.fault.instance, fault=window.fault.describe(),
                         at=round(at if at is not None else 0.0, 3), planned=window.start)  # fmt: skip

    def remove(
        self, name: str, *, reason: str = "scheduled", at: float | None = None, ended: bool = False
    ) -> bool:
        """Remove an applied window; False when it is not applied (removed already, or never). ``ended``:
        the fault ended by itself, so it is only struck from the record."""
        with self._lock:
            applied = self.applied.get(name)
            if applied is None:
                return False
            if not ended:
                try:
                    self.injector.remove(applied.window)
                except Exception as exc:
                    self._failed(applied.window, f"remove: {exc}")
                    raise
            del self.applied[name]
            self._write_ledger()
        window = applied.window
        self.events.emit("fault.end", window=name, kind=window.fault.kind.value,
                         instance=window.fault.instance, at=round(at if at is not None else 0.0, 3),
                         lasted=round(self.clock() - applied.applied_at, 3), reason=reason)  # fmt: skip
        return True

    def remove_all(self, reason: str = "cleanup") -> list[str]:
        """Remove every applied fault, newest first; returns what could not be removed (and keeps it
        in the ledger)."""
        left = []
        for name in reversed(list(self.applied)):
            try:
                self.remove(name, reason=reason)
            except Exception as exc:
                left.append(f"{self.applied[name].window.fault.describe()}: {exc}")
        return left

    def active(self) -> list[FaultWindow]:
        with self._lock:
            return [a.window for a in self.applied.values()]

    def adopt(self, windows: Sequence[FaultWindow], ends: Mapping[str, FaultEnd] | None = None) -> None:
        """Take over windows another process applied (read from its ledger, with their ends), so this one can
        remove them; their time applied counts from now."""
        ends = ends or {}
        with self._lock:
            for window in windows:
                self.applied.setdefault(
                    window.name, AppliedFault(window, self.clock(), ends.get(window.name))
                )

    def _failed(self, window: FaultWindow, error: str) -> None:
        self.failures.append(f"{window.name}: {window.fault.describe()}: {error}")
        self.events.emit("fault.failed", window=window.name, fault=window.fault.describe(), error=error)

    def _write_ledger(self) -> None:
        if self.ledger is None:
            return
        ledger = FaultLedger(
            pid=os.getpid(),
            applied=tuple(a.window for a in self.applied.values()),
            ends={a.window.name: a.end for a in self.applied.values() if a.end is not None},
        )
        _write_atomically(self.ledger, ledger.model_dump_json(indent=2))


EXPIRY_MARGIN = 1.0
"""Seconds past a window's end at which its fault ends by itself, should the runner be gone by then."""


class ScheduleRunner:
    """Plays a schedule in real time through a ``FaultApplier``; ``run`` blocks until the schedule ends or
    ``stop`` is called, then removes everything it applied, whatever ended it. Each window's fault also
    carries its own end (``EXPIRY_MARGIN`` after the window), so a run killed mid-window on a stack that
    outlives it (``--attach``) leaves no fault on past its time. A fault that cannot be
    applied ends the schedule at once, and ``error`` says why: the run that plays it must stop too, since
    its checks would judge a fault that never happened."""

    def __init__(
        self,
        schedule: FaultSchedule,
        applier: FaultApplier,
        *,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.schedule = schedule
        self.applier = applier
        self.events = applier.events
        self.clock = applier.clock
        self.started_at: float | None = None
        self.error: FaultNotApplied | None = None
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._mine: list[str] = []

    @property
    def failures(self) -> list[str]:
        return self.applier.failures

    def stop(self) -> None:
        """Ask ``run`` to end now; it removes what it applied before it returns."""
        self._stop.set()

    def run(self, *, hold_open: bool = False) -> None:
        """Apply and remove windows on time; then remove every fault of the schedule still applied.

        With ``hold_open``, wait for ``stop`` after the last window instead of returning."""
        self.started_at = self.clock()
        self.events.emit(
            "fault.schedule_started", seed=self.schedule.seed, windows=len(self.schedule.windows)
        )
        try:
            for at, starting, window in self._timeline():
                if self._wait_until(at):
                    return
                if starting:
                    try:
                        self.applier.apply(window, at=self.elapsed(), expires_at=self._expiry(window))
                    except Exception as exc:  # recorded by the applier too
                        self.error = FaultNotApplied(f"{window.name} ({window.fault.describe()})", exc)
                        return
                    self._mine.append(window.name)
                else:
                    with contextlib.suppress(Exception):
                        self.applier.remove(window.name, at=self.elapsed())
            if hold_open:
                self._stop.wait()
        finally:
            self.remove_all()

    def remove_all(self) -> None:
        """Remove every fault of this schedule still applied (newest first); safe to call twice."""
        for name in reversed(self._mine):
            with contextlib.suppress(Exception):
                self.applier.remove(name, reason="cleanup", at=self.elapsed())

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else self.clock() - self.started_at

    def _expiry(self, window: FaultWindow) -> float | None:
        """When the fault proxy (or the stack's watch) is to end ``window`` if this runner cannot (it died
        with its command): ``EXPIRY_MARGIN`` after the window's end, wall clock; None for a window that lasts
        until cleanup."""
        if window.end is None:
            return None
        return time.time() + (window.end - self.elapsed()) + EXPIRY_MARGIN

    def active(self) -> list[FaultWindow]:
        return [w for w in self.applier.active() if w.name in self._mine]

    def _timeline(self) -> list[tuple[float, bool, FaultWindow]]:
        moments = [(w.start, True, w) for w in self.schedule.windows]
        moments += [(w.end, False, w) for w in self.schedule.windows if w.end is not None]
        # at the same moment, end windows before starting new ones
        return sorted(moments, key=lambda m: (m[0], m[1], m[2].name))

    def _wait_until(self, at: float) -> bool:
        """Sleep until ``at`` seconds after the start; True when stopped meanwhile."""
        assert self.started_at is not None
        return self._stop.is_set() or self._wait(max(0.0, self.started_at + at - self.clock()))


def read_ledger(path: Path) -> list[FaultWindow]:
    """The windows a (possibly crashed) run left applied, from its ledger; [] when there is none."""
    return list(FaultLedger.read(path).applied)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
