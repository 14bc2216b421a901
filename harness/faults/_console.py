"""Faults applied by hand, from a terminal (``harness fault``): on the fault proxy of a running stack or of
any Toxiproxy, by instance name, through the one ``FaultApplier`` so every fault is in the ledger and on
the timeline like those of chaos and load runs. Each operation holds a lock on the workdir's ledger, so
two terminals (a ``--for`` still counting down in one) never lose each other's faults."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.events import EventLog
from harness.faults._client import ToxiproxyClient
from harness.faults._collection import KINDS
from harness.faults._errors import ProxyNotFound, ToxicNotFound
from harness.faults._limits import toxicity_refusal
from harness.faults._models import ProxyInfo, Stream, ToxicType
from harness.faults._schedule import (
    FaultApplier,
    FaultKind,
    FaultSpec,
    FaultWindow,
    ToxiproxyInjector,
    read_ledger,
)

LEDGER = "fault-ledger.json"
EVENTS = "harness-fault"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
HTTP_TOXICS = (ToxicType.HTTP_ERROR.value, ToxicType.HTTP_LATENCY.value)


def parse_duration(text: str) -> float:
    """``30``, ``30s``, ``1.5m``, ``500ms``, ``2h`` as seconds; ConfigError naming the forms otherwise."""
    match = _DURATION.fullmatch(text.strip())
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"] if match else 0.0
    if match is None or seconds <= 0:
        raise ConfigError(f"--for {text!r}: give a duration such as 30s, 1.5m, 500ms or 2h")
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


@dataclass(frozen=True)
class ActiveFault:
    """A fault the proxy has now: a toxic, or a disabled proxy (``kind`` down); ``mine``: in the ledger."""

    instance: str
    name: str
    kind: str
    stream: str = ""
    toxicity: float = 1.0
    attributes: tuple[tuple[str, int | float | str | bool | None], ...] = ()
    mine: bool = False

    def describe(self) -> str:
        attributes = " ".join(f"{key}={value}" for key, value in self.attributes if value not in ("", 0))
        toxicity = "" if self.toxicity == 1.0 else f" toxicity={self.toxicity:g}"
        stream = f" {self.stream}" if self.stream else ""
        return f"{self.kind}{stream}{' ' + attributes if attributes else ''}{toxicity}"


def active_faults(proxies: Mapping[str, ProxyInfo], names: Sequence[str] | None = None) -> list[ActiveFault]:
    """Every toxic and disabled proxy among ``proxies`` (those in ``names``, if given), by instance."""
    found = []
    for name in sorted(proxies):
        if names is not None and name not in names:
            continue
        proxy = proxies[name]
        if not proxy.enabled:
            found.append(ActiveFault(name, f"{name} disabled", "down"))
        for toxic in proxy.toxics:
            found.append(ActiveFault(name, toxic.name, toxic.type, toxic.stream, toxic.toxicity,
                                     tuple(toxic.attributes.items())))  # fmt: skip
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

    def __init__(self, target: FaultTarget, *, client: ToxiproxyClient | None = None) -> None:
        self.target = target
        self.client = client or ToxiproxyClient(target.url)
        self.events = EventLog(EVENTS, target.workdir / "events" / f"{EVENTS}.jsonl")
        self._ledger = target.workdir / LEDGER
        self._lock_path = target.workdir / "fault-ledger.lock"
        self._applied_at: dict[str, float] = {}  # when this process applied a window (for its lasted)

    def close(self) -> None:
        self.events.close()
        self.client.close()

    @contextlib.contextmanager
    def _applier(self) -> Iterator[FaultApplier]:
        self.target.workdir.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                applier = FaultApplier(ToxiproxyInjector(self.client), self.events, ledger=self._ledger)
                applier.adopt(read_ledger(self._ledger))
                for name, applied in applier.applied.items():
                    applied.applied_at = self._applied_at.get(name, applied.applied_at)
                yield applier
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
    ) -> FaultWindow:
        """Add a toxic to the instance's proxy until removed; its stream by default: upstream for the HTTP
        toxics (they act on requests), downstream for the others (as in Toxiproxy)."""
        refusal = toxicity_refusal(toxicity)
        if refusal:
            raise ConfigError(refusal)
        if toxic not in KINDS:
            raise ConfigError(f"unknown toxic {toxic!r}; one of {', '.join(KINDS)}")
        self.check_instance(instance)
        chosen = stream or (Stream.UPSTREAM if toxic in HTTP_TOXICS else Stream.DOWNSTREAM)
        spec = FaultSpec(kind=FaultKind(toxic), instance=instance, attributes=dict(attributes),
                         stream=chosen, toxicity=toxicity)  # fmt: skip
        return self._apply(spec, name)

    def down(self, instance: str) -> FaultWindow:
        """Partition the instance: its proxy refuses connections (and closes open ones) until ``up``."""
        self.check_instance(instance)
        return self._apply(FaultSpec(kind=FaultKind.DOWN, instance=instance), None)

    def _apply(self, spec: FaultSpec, name: str | None) -> FaultWindow:
        window = FaultWindow(name=name or f"{spec.kind.value}-{spec.instance}-{uuid.uuid4().hex[:6]}",
                             fault=spec, start=0.0)  # fmt: skip
        with self._applier() as applier:
            if spec.kind is FaultKind.DOWN and any(
                w.fault.kind is FaultKind.DOWN and w.fault.instance == spec.instance for w in applier.active()
            ):
                raise ConfigError(f"{spec.instance} is already down")
            applier.apply(window)
            self._applied_at[window.name] = applier.applied[window.name].applied_at
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
        """What the fault proxy has now on the instances (all of them by default)."""
        wanted = list(names) if names is not None else self.instances()
        proxies = {name: proxy.info for name, proxy in self.client.proxies().items()}
        mine = {window.name for window in read_ledger(self._ledger)}
        faults = active_faults(proxies, wanted)
        return [dataclasses.replace(f, mine=f.name in mine) for f in faults]

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
        with self._applier() as applier:
            return applier.remove(window.name, reason=reason)
