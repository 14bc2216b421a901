"""SIGINT and SIGTERM as one interruption a run can clean up after, and the exit code each one means.

A run installs ``stop_on_signals`` around its work: the first SIGINT or SIGTERM raises ``Interrupted`` (a
KeyboardInterrupt, so Chaos Toolkit and Locust's supervision treat it as Ctrl-C) where the main thread
is; the run removes its faults, stops what it started and exits 130 for SIGINT, 143 for SIGTERM
(``harness.verdict.ExitCode``). The signal is remembered, so a run that learns of the interruption only
from its engine (Chaos Toolkit's journal says "interrupted") still exits with the right code.

A second signal does not interrupt the cleanup (faults must still be removed, process groups still
killed); it only cuts the grace the stopping processes get to nothing (``hurried``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from harness.verdict import ExitCode

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.interrupted_by(self.signum)


class _Received:
    """The first signal of the current run (None: none yet), and the handler that records it while a run
    is inside ``stop_on_signals``."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.deferring = 0
        self.handler: Callable[[int, FrameType | None], None] | None = None


_received = _Received()


def received() -> int | None:
    """The first SIGINT or SIGTERM received inside ``stop_on_signals``, if any."""
    return _received.signum


def hurried() -> bool:
    """A second SIGINT or SIGTERM came: stops give no more grace (they still kill and clean up)."""
    return _received.count > 1


def stop_if_received() -> None:
    """At a boundary between phases of a run: stop now if a signal came and did not stop it (one kept by
    ``deferred``, or one an engine that catches Ctrl-C, Chaos Toolkit, turned into a return)."""
    if _received.signum is not None and _received.handler is not None:
        raise Interrupted(_received.signum)


def interrupted_exit(default: int = signal.SIGINT) -> ExitCode:
    """130 or 143 for the signal received (``default`` when the interruption came otherwise)."""
    return ExitCode.interrupted_by(_received.signum or default)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``Interrupted`` in the main thread; the handlers in place
    before are restored after it. Outside the main thread (no signals there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.signum = None
    _received.count = 0

    def handler(signum: int, _frame: FrameType | None) -> None:
        _received.count += 1
        if _received.signum is None:
            _received.signum = signum
        if _received.count == 1 and not _received.deferring:
            raise Interrupted(signum)  # only the first: later ones must not break off the cleanup it started

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    _received.handler = handler
    try:
        yield
    finally:
        _received.handler = None
        for sig, before in previous.items():
            signal.signal(sig, before)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A stretch where an exception raised by the handler could be swallowed or leave a library half done
    (pact's verifier runs Python code as C callbacks): a signal is kept, and raised when the block ends."""
    _received.deferring += 1
    try:
        yield
    finally:
        _received.deferring -= 1
    stop_if_received()


def reclaim() -> None:
    """Put the run's handlers back where an engine replaced them (Chaos Toolkit turns SIGTERM into its own
    interruption, which would lose which signal it was); nothing outside ``stop_on_signals``."""
    handler = _received.handler
    if handler is not None and threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            signal.signal(sig, handler)
