"""Faults applied by hand, from a terminal (``harness fault``): on the fault proxy of a running stack or of
any Toxiproxy, by instance name, through the one ``FaultApplier`` so every fault is in the ledger and on
the timeline like those of chaos and load runs. Each operation holds a lock on the workdir's ledger, so
two terminals (a ``--for`` still counting down in one) never lose each other's faults.

A fault held for a duration ends on time even if the command holding it dies: the embedded fault proxy
ends it by itself (``expires_in``); with a Toxiproxy that cannot, the end is in the ledger, and the running
stack's watch (or the next ``harness fault`` command) ends it once its holder has had its chance."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from harness.errors import ConfigError
from harness.events import EventLog
from harness.faults._client import ToxiproxyClient
from harness.faults._collection import EXPIRY, KINDS
from harness.faults._errors import FaultError, ProxyNotFound, ToxicNotFound
from harness.faults._limits import toxicity_refusal
from harness.faults._models import ProxyInfo, Stream, ToxicType
from harness.faults._schedule import (
    FaultApplier,
    FaultKind,
    FaultLedger,
    FaultSpec,
    FaultWindow,
    ToxiproxyInjector,
)

LEDGER = "fault-ledger.json"
EVENTS = "harness-fault"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
HTTP_TOXICS = (ToxicType.HTTP_ERROR.value, ToxicType.HTTP_LATENCY.value)
MAX_HOLD = (EXPIRY.high or 0) / 1000  # seconds: the longest a fault proxy holds a fault it is to end itself
EXPIRY_GRACE = 0.5
"""Seconds past a fault's end during which only its holder removes it (as "timed"); after them, whoever
reads the ledger does (as "expired"), since the holder is gone."""


def parse_duration(text: str) -> float:
    """``30``, ``30s``, ``1.5m``, ``500ms``, ``2h`` as seconds (up to a week); ConfigError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"] if match else 0.0
    if match is None or seconds <= 0:
        raise ConfigError(f"--for {text!r}: give a duration such as 30s, 1.5m, 500ms or 2h")
    if seconds > MAX_HOLD:
        raise ConfigError(f"--for {text!r}: at most {MAX_HOLD / 3600:g}h (one week)")
    return seconds


def toxic_kinds() -> list[str]:
    return list(KINDS)


def toxic_attributes(toxic: str, pairs: Sequence[str]) -> dict[str, int | str]:
    """``ATTR=VALUE`` words as a toxic's attributes, checked as the embedded server checks them; one
    ConfigError line naming the attribute and what it allows."""
    kind = KINDS.get(toxic)
    if kind is None:
        raise ConfigError(f"unknown toxic {toxic!r}; one of {', '.join(KINDS)}")
    fields = {field.name: field for field in dataclasses.fields(kind)}
    allowed = ", ".join(fields) or "none"
    values: dict[str, int | str] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{pair!r}: give attributes as NAME=VALUE; {toxic} has {allowed}")
        if name not in fields:
            raise ConfigError(f"{name}: {toxic} has no such attribute; it has {allowed}")
        if kind.go_types[name] == "string":
            values[name] = text
            continue
        try:
            values[name] = int(text)
        except ValueError:
            bound = kind.bounds.get(name)
            unit = f" ({bound.unit})" if bound and bound.unit else ""
            raise ConfigError(f"{name}: must be a whole number{unit}, not {text!r}") from None
    refusal = kind(**values).refusal()
    if refusal:
        raise ConfigError(refusal)
    return values


@dataclass(frozen=True)
class FaultTarget:
    """The fault proxy to act on and the instances it fronts: a running stack's, or any Toxiproxy's."""

    url: str
    workdir: Path  # where the ledger and the events go
    instances: tuple[str, ...] | None = None  # None: every proxy the server has
    where: str = ""  # for messages: "the stack in .harness/run", "TOXIPROXY_URL=..."
    watched: bool = False  # a running stack watches the ledger in workdir and ends faults whose time is up


class EndedBy(StrEnum):
    """Who ends a fault held for a duration when its time is up, should the command holding it be gone."""

    PROXY = "proxy"  # the fault proxy itself (the embedded one's expires_in)
    WATCH = "watch"  # the running stack's watch, from the ledger (a Toxiproxy without expiry)
    COMMAND = "command"  # only the holding command (or the next harness fault command, from the ledger)


@dataclass(frozen=True)
class ActiveFault:
    """A fault the proxy has now: a toxic, or a disabled proxy (``kind`` down); ``mine``: in the ledger;
    ``ends_in``: seconds until it ends by itself (None: until removed)."""

    instance: str
    name: str
    kind: str
    stream: str = ""
    toxicity: float = 1.0
    attributes: tuple[tuple[str, int | float | str | bool | None], ...] = ()
    mine: bool = False
    ends_in: float | None = None

    def describe(self) -> str:
        attributes = " ".join(f"{key}={value}" for key, value in self.attributes if value not in ("", 0))
        toxicity = "" if self.toxicity == 1.0 else f" toxicity={self.toxicity:g}"
        stream = f" {self.stream}" if self.stream else ""
        return f"{self.kind}{stream}{' ' + attributes if attributes else ''}{toxicity}"

    def ending(self) -> str:
        """``ends in 12s``, or "" for a fault that stays until removed."""
        return "" if self.ends_in is None else f"ends in {math.ceil(max(self.ends_in, 0.0))}s"


def _seconds(milliseconds: int | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000


def active_faults(proxies: Mapping[str, ProxyInfo], names: Sequence[str] | None = None) -> list[ActiveFault]:
    """Every toxic and disabled proxy among ``proxies`` (those in ``names``, if given), by instance."""
    found = []
    for name in sorted(proxies):
        if names is not None and name not in names:
            continue
        proxy = proxies[name]
        if not proxy.enabled:
            found.append(ActiveFault(name, f"{name} disabled", "down", ends_in=_seconds(proxy.expires_in)))
        for toxic in proxy.toxics:
            found.append(ActiveFault(name, toxic.name, toxic.type, toxic.stream, toxic.toxicity,
                                     tuple(toxic.attributes.items()),
                                     ends_in=_seconds(toxic.expires_in)))  # fmt: skip
    return found


def faults_summary(faults: Sequence[ActiveFault]) -> str:
    """One short phrase for a status line, per instance: ``faults users-2 (http_error 30%, latency)``."""
    if not faults:
        return ""
    by_instance: dict[str, list[str]] = {}
    for fault in faults:
        share = "" if fault.toxicity == 1.0 or fault.kind == "down" else f" {fault.toxicity:.0%}"
        by_instance.setdefault(fault.instance, []).append(f"{fault.kind}{share}")
    return "faults " + ", ".join(f"{name} ({', '.join(kinds)})" for name, kinds in by_instance.items())


class FaultConsole:
    """The operations of ``harness fault``; each one locks the ledger, takes over what it lists, acts
    through a FaultApplier (events and ledger), and leaves the ledger listing what is applied."""

    def __init__(
        self,
        target: FaultTarget,
        *,
        client: ToxiproxyClient | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.client = client or ToxiproxyClient(target.url)
        self.events = EventLog(EVENTS, target.workdir / "events" / f"{EVENTS}.jsonl")
        self.ended_by: dict[str, EndedBy] = {}  # windows this process applied for a duration: who ends them
        self._ledger = target.workdir / LEDGER
        self._lock_path = target.workdir / "fault-ledger.lock"
        self._applied_at: dict[str, float] = {}  # when this process applied a window (for its lasted)
        self._wall_clock = wall_clock

    def close(self) -> None:
        self.events.close()
        self.client.close()

    @contextlib.contextmanager
    def _applier(self, *, expire: bool = True) -> Iterator[FaultApplier]:
        """The ledger's applier, under the ledger's lock; with ``expire``, faults whose time is up (and
        whose holder had its grace) are ended first."""
        self.target.workdir.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                applier = FaultApplier(ToxiproxyInjector(self.client), self.events, ledger=self._ledger)
                ledger = FaultLedger.read(self._ledger)
                applier.adopt(ledger.applied, ledger.ends)
                for name, applied in applier.applied.items():
                    applied.applied_at = self._applied_at.get(name, applied.applied_at)
                if expire:
                    self._end_expired(applier, ledger)
                yield applier
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _end_expired(self, applier: FaultApplier, ledger: FaultLedger) -> list[str]:
        """End the ledger's faults whose time is up; one the proxy will not let go stays listed."""
        ended = []
        for window in ledger.expired(self._wall_clock() - EXPIRY_GRACE):
            end = ledger.ends[window.name]
            with contextlib.suppress(FaultError):  # recorded (fault.failed); tried again next time
                if applier.remove(window.name, reason="expired", ended=end.by_proxy):
                    ended.append(f"{window.fault.describe()} ({window.name})")
        return ended

    def end_expired(self) -> list[str]:
        """End every fault of the ledger whose time is up (the command that held it is gone); what it
        ended. Cheap when there is none: the ledger is read without the lock first."""
        if not FaultLedger.read(self._ledger).expired(self._wall_clock() - EXPIRY_GRACE):
            return []
        with self._applier(expire=False) as applier:
            return self._end_expired(applier, FaultLedger.read(self._ledger))

    def instances(self) -> list[str]:
        """The instances faults can name: the stack's proxied instances, or every proxy of the server."""
        if self.target.instances is not None:
            return list(self.target.instances)
        return sorted(self.client.proxies())

    def check_instance(self, instance: str) -> None:
        known = self.instances()
        if instance not in known:
            raise ConfigError(
                f"no instance named {instance!r} behind {self.target.where or self.target.url}; "
                f"known: {', '.join(known) or 'none'}"
            )

    def add(
        self,
        instance: str,
        toxic: str,
        attributes: Mapping[str, int | str],
        *,
        toxicity: float = 1.0,
        stream: Stream | None = None,
        name: str | None = None,
        hold_for: float | None = None,
    ) -> FaultWindow:
        """Add a toxic to the instance's proxy until removed (or for ``hold_for`` seconds: then it ends even
        if this process is gone, see ``ended_by``); its stream by default: upstream for the HTTP toxics
        (they act on requests), downstream for the others (as in Toxiproxy)."""
        refusal = toxicity_refusal(toxicity)
        if refusal:
            raise ConfigError(refusal)
        if toxic not in KINDS:
            raise ConfigError(f"unknown toxic {toxic!r}; one of {', '.join(KINDS)}")
        self.check_instance(instance)
        chosen = stream or (Stream.UPSTREAM if toxic in HTTP_TOXICS else Stream.DOWNSTREAM)
        spec = FaultSpec(kind=FaultKind(toxic), instance=instance, attributes=dict(attributes),
                         stream=chosen, toxicity=toxicity)  # fmt: skip
        return self._apply(spec, name, hold_for)

    def down(self, instance: str, *, hold_for: float | None = None) -> FaultWindow:
        """Partition the instance: its proxy refuses connections (and closes open ones) until ``up`` (or
        for ``hold_for`` seconds, as for ``add``)."""
        self.check_instance(instance)
        return self._apply(FaultSpec(kind=FaultKind.DOWN, instance=instance), None, hold_for)

    def _apply(self, spec: FaultSpec, name: str | None, hold_for: float | None) -> FaultWindow:
        window = FaultWindow(name=name or f"{spec.kind.value}-{spec.instance}-{uuid.uuid4().hex[:6]}",
                             fault=spec, start=0.0)  # fmt: skip
        with self._applier() as applier:
            if spec.kind is FaultKind.DOWN and any(
                w.fault.kind is FaultKind.DOWN and w.fault.instance == spec.instance for w in applier.active()
            ):
                raise ConfigError(f"{spec.instance} is already down")
            # The end is taken before the proxy's, so the ledger never outlasts what the proxy does itself.
            expires_at = self._wall_clock() + hold_for if hold_for is not None else None
            applier.apply(window, expires_at=expires_at)
            applied = applier.applied[window.name]
            self._applied_at[window.name] = applied.applied_at
        if hold_for is not None:
            self.ended_by[window.name] = (
                EndedBy.PROXY if applied.end is not None and applied.end.by_proxy
                else EndedBy.WATCH if self.target.watched
                else EndedBy.COMMAND
            )  # fmt: skip
        return window

    def remove(self, instance: str, name: str | None = None) -> list[str]:
        """Remove the named fault of the instance, or its newest; returns what was removed."""
        self.check_instance(instance)
        with self._applier() as applier:
            mine = [w for w in applier.active() if w.fault.instance == instance]
            chosen = [w for w in mine if w.name == name] if name else mine[-1:]
            if chosen:
                applier.remove(chosen[0].name, reason="manual")
                return [chosen[0].fault.describe()]
        others = [t.name for t in self.client.toxics(instance)]
        target = name or (others[-1] if others else None)
        if target is None:
            raise ConfigError(f"{instance} has no fault to remove")
        try:
            self.client.remove_toxic(instance, target)
        except ToxicNotFound:
            raise ConfigError(
                f"{instance} has no fault named {target!r}; it has {', '.join(others) or 'none'}"
            ) from None
        return [f"{target} on {instance} (not added by harness fault)"]

    def up(self, instance: str) -> bool:
        """Enable the instance's proxy again; False when it was not down."""
        self.check_instance(instance)
        with self._applier() as applier:
            for window in reversed(applier.active()):
                if window.fault.kind is FaultKind.DOWN and window.fault.instance == instance:
                    return applier.remove(window.name, reason="manual")
        if self.client.proxy(instance).info.enabled:
            return False
        self.client.update_proxy(instance, enabled=True)
        return True

    def clear(self, instance: str | None = None) -> list[str]:
        """Remove every fault (of one instance): toxics, whoever added them, and disabled proxies."""
        names = [instance] if instance is not None else self.instances()
        if instance is not None:
            self.check_instance(instance)
        removed = []
        with self._applier() as applier:
            for window in reversed(applier.active()):
                if window.fault.instance in names:
                    applier.remove(window.name, reason="manual")
                    removed.append(window.fault.describe())
        for fault in self.faults(names):
            with contextlib.suppress(ToxicNotFound, ProxyNotFound):
                if fault.kind == "down":
                    self.client.update_proxy(fault.instance, enabled=True)
                else:
                    self.client.remove_toxic(fault.instance, fault.name)
                removed.append(f"{fault.describe()} on {fault.instance}")
        return removed

    def faults(self, names: Sequence[str] | None = None) -> list[ActiveFault]:
        """What the fault proxy has now on the instances (all of them by default); those in the ledger are
        marked ``mine`` (a disabled proxy under the name of its ``down`` window), with the ledger's end
        where the proxy does not know it."""
        wanted = list(names) if names is not None else self.instances()
        proxies = {name: proxy.info for name, proxy in self.client.proxies().items()}
        ledger = FaultLedger.read(self._ledger)
        mine = {window.name: window for window in ledger.applied}
        downs = {w.fault.instance: w for w in ledger.applied if w.fault.kind is FaultKind.DOWN}
        now = self._wall_clock()
        found = []
        for fault in active_faults(proxies, wanted):
            window = downs.get(fault.instance) if fault.kind == FaultKind.DOWN.value else mine.get(fault.name)
            if window is None:
                found.append(fault)
                continue
            end = ledger.ends.get(window.name)
            ends_in = fault.ends_in if end is None or fault.ends_in is not None else end.at - now
            found.append(dataclasses.replace(fault, name=window.name, mine=True, ends_in=ends_in))
        return found

    def hold(
        self,
        window: FaultWindow,
        seconds: float,
        *,
        tick: Callable[[float], None] = lambda _left: None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> bool:
        """Keep ``window`` for ``seconds`` (calling ``tick`` with the seconds left, about every second),
        then remove it; also when interrupted (Ctrl-C). True if it was still applied."""
        stop = stop or threading.Event()
        deadline = clock() + seconds
        reason = "interrupted"
        try:
            while (left := deadline - clock()) > 0 and not stop.is_set():
                tick(left)
                stop.wait(min(1.0, left))
            reason = "timed"
        finally:
            removed = self.release(window, reason=reason)
        return removed

    def release(self, window: FaultWindow, *, reason: str = "manual") -> bool:
        """Remove ``window`` if it is still applied; True if it was."""
        with self._applier(expire=False) as applier:  # its holder ends it (as "timed"), not the expiry
            return applier.remove(window.name, reason=reason)
