"""Faults on a running stack's instances, by name: toxics and partitions through its fault proxy, and
process faults (SIGKILL then restart, SIGSTOP then SIGCONT) through the stack itself. And the end of the
faults ``harness fault`` held for a duration in the stack's workdir, once their time is up, whether or not
the command holding them is still there (``ExpiredFaults``, run by the fault proxy's watch)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.errors import ConfigError
from harness.faults import FaultConsole, FaultKind, FaultWindow, ToxiproxyClient, ToxiproxyInjector
from harness.faults import FaultTarget as ConsoleTarget


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

    def apply(self, window: FaultWindow, *, expires_in: float | None = None) -> bool:
        name = self._check(window)
        match window.fault.kind:
            case FaultKind.KILL:
                self.stack.kill(name)
            case FaultKind.STOP:
                self._signal(name, signal.SIGSTOP)
            case _:
                return self._proxies(window).apply(window, expires_in=expires_in)
        return False  # a process fault ends with the stack, or when it is removed

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


class ExpiredFaults:
    """Ends the faults of the workdir's fault ledger whose time is up (``harness fault --for``), as their
    command would have: those a fault proxy without expiry (a real Toxiproxy) still has are removed, those
    the fault proxy ended itself are struck from the ledger; each gets its ``fault.end`` (reason expired).
    At most one look at the ledger every ``interval`` seconds."""

    def __init__(
        self,
        url: str,
        workdir: Path,
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.workdir = workdir
        self._interval = interval
        self._clock = clock
        self._due = clock()
        self._console: FaultConsole | None = None

    def tick(self) -> list[str]:
        """End what is over, if a look is due; what was ended (FaultError when the proxy does not answer)."""
        if self._clock() < self._due:
            return []
        self._due = self._clock() + self._interval
        if self._console is None:
            client = ToxiproxyClient(self.url, timeout=2.0)
            self._console = FaultConsole(ConsoleTarget(self.url, self.workdir, watched=True), client=client)
        return self._console.end_expired()

    def close(self) -> None:
        if self._console is not None:
            self._console.close()
            self._console = None
