"""Locust as a subprocess, never imported: started headless with the run's plan, watched while it runs, and
ended with every process it forked, whatever ends the run.

Locust runs in a session (process group) of its own, forked from a ``Spawner`` thread with
PR_SET_PDEATHSIG, so it gets SIGTERM if the harness dies, even by SIGKILL; its workers set the same
signal towards their parent in the locustfile. When the run ends, or fails, or is interrupted, the whole
group gets SIGTERM and then SIGKILL. While Locust runs, its stats history is read every ``interval``
seconds and handed on row by row, and the start of the load (the master's ``load.started`` event) is
reported once, within 50 ms, so fault windows are timed from it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness._process import Spawner, _die_with_parent
from harness.errors import ConfigError, EnvironmentUnavailable
from harness.events import read_events
from harness.load._plan import LocustPlan
from harness.load._stats import HistoryRow, HistoryTail
from harness.net import free_port, is_loopback_host

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_MASTER_PORT = 5557


@dataclass(frozen=True)
class Distribution:
    """Where Locust's users run: this one process, ``processes`` forked workers on this machine, or
    (``master``) workers that connect from elsewhere (``harness load worker``)."""

    processes: int | None = None
    master: bool = False
    expect_workers: int = 1
    bind_host: str = "127.0.0.1"
    port: int | None = None
    workers_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.processes is not None and self.processes < 1:
            raise ConfigError(f"--processes must be 1 or more, got {self.processes}")
        if self.processes is not None and self.master:
            raise ConfigError(
                "--processes and --master exclude each other: --processes is a master with workers"
            )
        if self.expect_workers < 1:
            raise ConfigError(f"--expect-workers must be 1 or more, got {self.expect_workers}")

    @property
    def listens(self) -> bool:
        """Whether Locust's master opens a port for its workers (``--master``, or ``--processes`` above 1)."""
        return self.master or (self.processes or 1) > 1

    @property
    def workers(self) -> int:
        """Processes that run users."""
        if self.master:
            return self.expect_workers
        return self.processes or 1

    def check(self, *, allow_remote: bool) -> None:
        if self.master and not (allow_remote or is_loopback_host(self.bind_host)):
            raise ConfigError(
                f"--master-bind-host {self.bind_host!r} is not a loopback address; pass --allow-remote to "
                "accept workers from other machines"
            )

    def master_port(self) -> int:
        """The port the master listens on: the one asked for; for ``--master`` without one, Locust's usual
        5557 (remote workers must know it); for ``--processes``, a free one from the OS, so two runs on one
        machine never share it."""
        if self.port is not None:
            return self.port
        return DEFAULT_MASTER_PORT if self.master else free_port()

    def options(self, port: int) -> list[str]:
        """Locust's options for this distribution, its master on ``port``. ``--processes`` forks workers
        that connect over loopback: the master then binds 127.0.0.1, not Locust's default of every
        interface."""
        if self.master:
            return [
                "--master",
                "--expect-workers",
                str(self.expect_workers),
                "--master-bind-host",
                self.bind_host,
                "--master-bind-port",
                str(port),
                "--expect-workers-max-wait",
                str(int(self.workers_wait)),
            ]
        if self.processes is not None and self.processes > 1:
            return [
                "--processes",
                str(self.processes),
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(port),
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(port),
            ]
        return []


@dataclass(frozen=True)
class LocustFiles:
    """Where one run's Locust output goes, in the report folder."""

    folder: Path

    @property
    def csv_prefix(self) -> Path:
        return self.folder / "locust"

    @property
    def history(self) -> Path:
        return self.folder / "locust_stats_history.csv"

    @property
    def failures(self) -> Path:
        return self.folder / "locust_failures.csv"

    @property
    def stats_json(self) -> Path:
        return self.folder / "locust.json"

    @property
    def log(self) -> Path:
        return self.folder / "locust.log"


@dataclass(frozen=True)
class LocustRun:
    """How Locust ran: its command, exit code, and when the load started and stopped (monotonic)."""

    command: list[str]
    returncode: int
    started: float
    stopped: float
    rows: list[HistoryRow]


def locust_command(
    plan: LocustPlan,
    files: LocustFiles,
    distribution: Distribution,
    extra: Sequence[str] = (),
    *,
    port: int = DEFAULT_MASTER_PORT,
) -> list[str]:
    """Headless, every statistic to files, Locust's "any failure is exit 1" off (thresholds judge)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--host",
        plan.hosts[0],
        "--csv",
        str(files.csv_prefix),
        "--csv-full-history",
        "--json-file",
        str(files.stats_json.with_suffix("")),
        "--exit-code-on-error",
        "0",
        *distribution.options(port),
        *plan.option(),
        *extra,
    ]


def worker_command(
    master_host: str, port: int, processes: int | None, extra: Sequence[str] = ()
) -> list[str]:
    """A Locust worker for ``harness load worker`` (the plan comes from the master)."""
    fork = ["--processes", str(processes)] if processes and processes > 1 else []
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(port),
        *fork,
        *extra,
    ]


class LocustProcess:
    """One Locust process (and whatever it forks) in a process group of its own; its output goes to
    ``log`` (None: this process's own output)."""

    def __init__(self, command: Sequence[str], log: Path | None) -> None:
        self.command = list(command)
        self.log = log
        self._popen: subprocess.Popen[bytes] | None = None
        self._spawner = Spawner("locust-spawner")

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> LocustProcess:
        death_signal = _die_with_parent()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with contextlib.ExitStack() as opened:
            log = None
            if self.log is not None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                log = opened.enter_context(self.log.open("ab"))

            def fork() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    self.command,
                    stdout=log,
                    stderr=subprocess.STDOUT if log else None,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                    preexec_fn=death_signal,
                )

            self._spawner.start()
            try:
                self._popen = self._spawner.call(fork)
            finally:
                if self._popen is None:  # it could not start: no thread is left waiting to fork
                    self._spawner.stop()
        return self

    def poll(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def wait(self, timeout: float | None) -> int | None:
        if self._popen is None:
            return None
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 5.0) -> None:
        """End the group: SIGTERM, then SIGKILL for what is left after ``grace`` seconds. Idempotent."""
        if self._popen is not None:
            group = self._popen.pid
            try:
                if self._popen.poll() is None:
                    _signal_group(group, signal.SIGTERM)
                    self.wait(grace)
                _signal_group(group, signal.SIGTERM)  # forked workers the master left behind
                deadline = time.monotonic() + grace
                while _group_alive(group) and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:  # also when a second Ctrl-C cuts the grace short: nothing is left, nothing unwaited
                _signal_group(group, signal.SIGKILL)
                if self._popen.poll() is None:
                    self._popen.kill()
                self._popen.wait()
        self._spawner.stop()  # after its child: the thread's end would signal it

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None:
            return ""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


PORT_ATTEMPTS = 3
_PORT_BUSY = "Address already in use"  # in the log of a master that could not bind its port


def run_locust(
    plan: LocustPlan,
    files: LocustFiles,
    distribution: Distribution,
    *,
    extra: Sequence[str] = (),
    startup_timeout: float = 30.0,
    on_started: Callable[[float], None] = lambda _mono: None,
    on_rows: Callable[[list[HistoryRow]], None] = lambda _rows: None,
    on_tick: Callable[[], None] = lambda: None,
    interval: float = 0.25,
) -> LocustRun:
    """Run Locust until its shape ends the load; raise EnvironmentUnavailable when it cannot start, dies,
    or overruns the plan by more than a grace period. Every Locust process has ended when this returns.

    A master port from the OS can be taken by someone else between the harness choosing it and Locust
    binding it: Locust is then started again on another, at most ``PORT_ATTEMPTS`` times, each said in its
    log. A port the user chose is never changed."""
    if plan.events is None:
        raise ValueError("the plan needs an events file: the start of the load is read from it")
    files.folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = distribution.master_port()
        try:
            return _run_once(
                plan,
                files,
                locust_command(plan, files, distribution, extra, port=port),
                distribution,
                startup_timeout=startup_timeout,
                on_started=on_started,
                on_rows=on_rows,
                on_tick=on_tick,
                interval=interval,
            )
        except _MasterPortBusy as busy:
            if distribution.port is not None or attempt == PORT_ATTEMPTS:
                raise EnvironmentUnavailable(str(busy)) from None
            with files.log.open("a", encoding="utf-8") as log:
                log.write(
                    f"harness: the master port {port} was taken before Locust bound it; starting Locust "
                    f"again on another (attempt {attempt + 1} of {PORT_ATTEMPTS})\n"
                )
    raise AssertionError("unreachable: the last attempt returns or raises")


class _MasterPortBusy(Exception):
    """Locust's master could not bind its port and exited before the load."""


def _run_once(
    plan: LocustPlan,
    files: LocustFiles,
    command: list[str],
    distribution: Distribution,
    *,
    startup_timeout: float,
    on_started: Callable[[float], None],
    on_rows: Callable[[list[HistoryRow]], None],
    on_tick: Callable[[], None],
    interval: float,
) -> LocustRun:
    events = Path(str(plan.events))
    events.parent.mkdir(parents=True, exist_ok=True)
    for stale in (files.history, files.stats_json, files.failures):
        stale.unlink(missing_ok=True)
    already = len(read_events(events)) if events.exists() else 0
    duration = plan.stages[-1].until
    grace = max(15.0, 0.5 * duration)
    wait_for_start = startup_timeout + (distribution.workers_wait if distribution.master else 0.0)
    tail = HistoryTail(files.history)
    started: float | None = None
    process = LocustProcess(command, files.log).start()
    began = time.monotonic()
    try:
        while True:
            code = process.wait(interval if started is not None else min(interval, 0.05))
            if started is None:
                started = _new_start(events, already)
                if started is not None:
                    on_started(started)
                elif code is None and time.monotonic() - began > wait_for_start:
                    raise EnvironmentUnavailable(
                        f"Locust did not start its load within {wait_for_start:g} s (log: {files.log}):\n"
                        + process.log_tail()
                    )
            rows = tail.read()
            if rows:
                on_rows(rows)
            if code is not None:
                break
            on_tick()
            if started is not None and time.monotonic() > started + duration + grace:
                raise EnvironmentUnavailable(
                    f"Locust ran {grace:g} s past the end of its {duration:g} s load and was stopped "
                    f"(log: {files.log})"
                )
    finally:
        process.stop()
    stopped = time.monotonic()
    if code != 0 or started is None:
        why = (
            f"exited with code {code}" if started is not None else f"exited with code {code} before the load"
        )
        message = f"Locust {why} (log: {files.log}):\n{process.log_tail()}"
        if started is None and _PORT_BUSY in process.log_tail(50):
            raise _MasterPortBusy(message)
        raise EnvironmentUnavailable(message)
    return LocustRun(command, code, started, stopped, tail.rows)


def _new_start(events: Path, already: int) -> float | None:
    """The first ``load.started`` written after the ``already`` events the file had before this run."""
    if not events.exists():
        return None
    for record in read_events(events)[already:]:
        if record.get("event") == "load.started":
            return float(record["mono"])
    return None
