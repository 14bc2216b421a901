"""A running stack as a user's test sees it (the pytest plugin's ``harness_stack``): instances by name,
faults that are events on the timeline and are always removed, and the timeline of what happened.

Every fault goes through one ``FaultApplier`` over the stack's ``StackInjector``, so it is recorded as a
``fault.start``/``fault.end`` pair (events source ``harness-pytest``) whatever way it ends; the
``fault(...)`` context manager removes it when the block ends, and ``close`` removes anything left.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

from harness.errors import ConfigError
from harness.events import EventLog
from harness.faults import FaultApplier, FaultKind, FaultSpec, FaultWindow, Stream, ToxiproxyClient
from harness.stack._faults import StackInjector
from harness.stack._stack import Stack
from harness.timeline import Timeline, build_timeline


class StackFaults:
    """Faults on a stack's instances by name: toxics (``latency``, ``timeout``, ...), ``down`` (the proxy
    refuses connections), ``kill`` (restarted on removal) and ``stop`` (continued on removal)."""

    def __init__(self, stack: Stack, events: EventLog) -> None:
        self.applier = FaultApplier(StackInjector(stack), events)
        self._origin = time.monotonic()

    def apply(
        self,
        instance: str,
        kind: str | FaultKind,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> str:
        """Apply one fault until removed; returns its name (a ConfigError names what is unknown)."""
        return self._apply(instance, kind, stream, toxicity, name, attributes)

    def _apply(
        self,
        instance: str,
        kind: str | FaultKind,
        stream: str,
        toxicity: float,
        name: str | None,
        attributes: dict[str, int],
    ) -> str:
        try:
            fault_kind = FaultKind(kind)
        except ValueError as exc:
            raise ConfigError(f"unknown fault {kind!r}; known: {', '.join(FaultKind)}") from exc
        window = FaultWindow(
            name=name or f"{fault_kind.value}-{instance}-{uuid.uuid4().hex[:6]}",
            fault=FaultSpec(kind=fault_kind, instance=instance, attributes=attributes, stream=Stream(stream),
                            toxicity=toxicity),
            start=round(time.monotonic() - self._origin, 3),
        )  # fmt: skip
        self.applier.apply(window, at=window.start)
        return window.name

    def remove(self, name: str) -> bool:
        """Remove a fault this object applied; False when it is not applied (any more)."""
        return self.applier.remove(name, at=round(time.monotonic() - self._origin, 3))

    @contextlib.contextmanager
    def fault(
        self,
        instance: str,
        kind: str | FaultKind,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: int,
    ) -> Iterator[str]:
        """The fault for the duration of the block, whatever ends it; yields its name."""
        name = self._apply(instance, kind, stream, toxicity, None, attributes)
        try:
            yield name
        finally:
            self.remove(name)

    def active(self) -> list[FaultWindow]:
        return self.applier.active()

    def remove_all(self) -> list[str]:
        """Remove every fault still applied, newest first; returns what could not be removed."""
        return self.applier.remove_all(reason="test teardown")


class StackHandle:
    """What a test holds: the ``Stack``, addresses by instance name, faults and the timeline."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.events = EventLog("harness-pytest", stack.event_log("harness-pytest"))
        self.faults = StackFaults(stack, self.events)
        self.fault = self.faults.fault
        """``with harness_stack.fault("inventory-2", "latency", latency=300): ...`` (``StackFaults.fault``)"""
        self.started = time.monotonic()

    @property
    def registry_url(self) -> str:
        return self.stack.registry_url

    @property
    def toxiproxy(self) -> ToxiproxyClient | None:
        """The fault proxy's own client (a toxic added through it is no event: prefer ``fault``)."""
        return self.stack.toxiproxy

    def instances(self, kind: str) -> list[str]:
        """The names of the instances of a service (``["inventory-1", "inventory-2"]``)."""
        return [member.name for member in self.stack.instances(kind)]

    def url(self, name: str) -> str:
        """The instance itself, bypassing its fault proxy."""
        return self.stack.url(name)

    def proxied_url(self, name: str) -> str:
        """Where callers reach the instance: through its fault proxy (what the registry lists)."""
        return self.stack.proxied_url(name)

    def timeline(self, since: float | None = None) -> Timeline:
        """Every process's events merged, from ``since`` (monotonic; default: when the stack was handed
        out) to now: breaker transitions, registry changes, fault windows, process kills and restarts.
        Earlier events (an earlier test's on a shared stack) are left out."""
        origin = self.started if since is None else since
        merged = build_timeline([self.stack.workdir / "events"], origin=origin, end=time.monotonic())
        return merged.model_copy(update={"events": [e for e in merged.events if e.mono >= origin]})

    def close(self) -> list[str]:
        """Remove every fault left and close the event log; returns what could not be removed."""
        left = self.faults.remove_all()
        self.events.close()
        return left
