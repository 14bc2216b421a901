"""Faults on a running stack's instances, by name: toxics and partitions through its fault proxy, and
process faults (SIGKILL then restart, SIGSTOP then SIGCONT) through the stack itself."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any, Protocol

from harness.errors import ConfigError
from harness.faults import FaultKind, FaultWindow, ToxiproxyClient, ToxiproxyInjector


class _Process(Protocol):
    @property
    def pid(self) -> int | None: ...
    def is_running(self) -> bool: ...


class FaultTarget(Protocol):
    """What faults need of a stack: its processes by name, its fault proxy, kill and restart."""

    @property
    def processes(self) -> Mapping[str, _Process]: ...
    @property
    def toxiproxy(self) -> ToxiproxyClient | None: ...
    def kill(self, name: str) -> None: ...
    def restart(self, name: str) -> Any: ...


class StackInjector:
    """The ``FaultInjector`` of a stack: every window names an instance the stack runs."""

    def __init__(self, stack: FaultTarget) -> None:
        self.stack = stack

    def _check(self, window: FaultWindow) -> str:
        name = window.fault.instance
        if name not in self.stack.processes:
            known = ", ".join(sorted(self.stack.processes))
            raise ConfigError(f"no instance named {name!r} in this stack; known: {known}")
        return name

    def _proxies(self, window: FaultWindow) -> ToxiproxyInjector:
        if self.stack.toxiproxy is None:
            raise ConfigError(f"{window.fault.describe()}: this stack runs without fault proxies")
        return ToxiproxyInjector(self.stack.toxiproxy)

    def apply(self, window: FaultWindow) -> None:
        name = self._check(window)
        match window.fault.kind:
            case FaultKind.KILL:
                self.stack.kill(name)
            case FaultKind.STOP:
                self._signal(name, signal.SIGSTOP)
            case _:
                self._proxies(window).apply(window)

    def remove(self, window: FaultWindow) -> None:
        name = self._check(window)
        match window.fault.kind:
            case FaultKind.KILL:
                if not self.stack.processes[name].is_running():
                    self.stack.restart(name)
            case FaultKind.STOP:
                self._signal(name, signal.SIGCONT)
            case _:
                self._proxies(window).remove(window)

    def _signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.stack.processes[name].pid
        if pid is None or not self.stack.processes[name].is_running():
            raise ConfigError(f"{name} is not running")
        os.kill(pid, sig)
