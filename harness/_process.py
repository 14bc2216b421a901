"""Start a service as a real child process, wait until it is ready, and stop it without leaving orphans.

Children get SIGTERM when their parent dies (PR_SET_PDEATHSIG), even by SIGKILL. Linux ties that signal to
the *thread* that forked, not the process, so a child forked from a worker thread dies when that thread
ends; a ``Spawner`` forks every child from one thread its owner keeps alive, for any executable.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from harness._spec import ProcessSpec
from harness.errors import ServiceStartError
from harness.signals import deferred

_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec to get SIGTERM when its parent thread ends (the harness dies, even by
    SIGKILL), so none is orphaned. libc is looked up here, in the parent: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_death_signal


class Spawner:
    """Forks children from one long-lived thread that its owner starts and stops (a Stack owns one).

    The death signal then fires only when the harness dies or the owner stops the spawner, whichever
    thread asked for the child: ``Stack.restart`` from a worker thread, the fault proxy's supervisor.
    Nothing is asked of the child, so this works for users' own executables too. Stopping the spawner
    ends its thread, which sends SIGTERM to every child it forked: stop the children first.
    """

    def __init__(self, name: str = "harness-spawner") -> None:
        self.name = name
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # a request is queued before the stop sentinel, or refused
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> Spawner:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self.name} was already started")
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
        return self

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (which forks) on the spawner's thread and return its result or raise its error."""
        if threading.current_thread() is self._thread:
            return fn()
        done: Future[T] = Future()
        with self._lock:
            if self._thread is None or self._stopped:
                raise RuntimeError(f"{self.name} is not running; start it before spawning children")
            self._requests.put((fn, done))
        return done.result()

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            fn, done = request
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(fn())
                except BaseException as exc:  # handed to the caller, who raises it in its own thread
                    done.set_exception(exc)

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread once queued requests are served; its children get SIGTERM (stop them first)."""
        with self._lock:
            if self._thread is None or self._stopped:
                return
            self._stopped = True
            self._requests.put(None)
        self._thread.join(timeout)


class ServiceProcess:
    """One process described by a ``ProcessSpec``, as a child on loopback: spawned, waited for, stopped.

    A harness child binds its own port (0 = any free one) and writes it to a port file; an own command is
    given its port beforehand. ``start`` then waits for ``GET <ready_path>`` to answer 200, within
    ``startup_timeout``. Output goes to a log file whose tail is shown when start-up fails. Without a
    ``spawner`` the child is forked from the calling thread and gets SIGTERM when that thread ends: pass
    one when threads that come and go start children.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        workdir: Path | None = None,
        startup_timeout: float = 20.0,
        spawner: Spawner | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        self.host = spec.host
        self.ready_path = spec.ready_path
        # Without one, a temporary folder of its own, made when it is first spawned: a process that is only
        # described (its command shown, its spec copied) leaves no folder behind.
        self._fresh_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.gettempdir()) / f"harness-{spec.name}-{secrets.token_hex(6)}"
        self.startup_timeout = startup_timeout
        self.spawner = spawner
        self.port_file = self.workdir / f"{spec.name}.port"
        self.log_path = self.workdir / f"{spec.name}.log"
        self.port: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._spawned_at = 0.0

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} has not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        return self.spec.argv(None if self.spec.own else self.port_file)

    def again(self) -> ServiceProcess:
        """A new, unstarted process of the same spec on the port this one had, so its address stays valid."""
        spec = self.spec.with_port(self.port or self.spec.port)
        return ServiceProcess(spec, workdir=None if self._fresh_workdir else self.workdir,
                              startup_timeout=self.startup_timeout,
                              spawner=self.spawner)  # fmt: skip

    def start(self) -> ServiceProcess:
        """Spawn the process and block until it answers its ready path; raise ServiceStartError otherwise."""
        return self.spawn().wait_ready()

    def spawn(self) -> ServiceProcess:
        """Spawn the process without waiting, so several can start at once; then call ``wait_ready``."""
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running")
        if self._fresh_workdir:  # as mkdtemp makes one: new, and this user's alone
            self.workdir.mkdir(mode=0o700)
            self._fresh_workdir = False
        else:
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        self.port = self.spec.port if self.spec.own else None
        env = {**os.environ, **self.spec.environment()}
        command = self.command()
        death_signal = _die_with_parent()
        with self.log_path.open("ab") as log:

            def fork() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=self.spec.cwd,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches the harness, which stops us
                    preexec_fn=death_signal,
                )

            try:
                with deferred():  # a Ctrl-C while the child is forked waits until it is ours to stop
                    self._popen = fork() if self.spawner is None else self.spawner.call(fork)
            except OSError as exc:  # an own command that does not exist or may not run
                where = self.spec.cwd or Path.cwd()
                raise ServiceStartError(f"{self.name}: cannot run {command[0]!r} in {where}: "
                                        f"{exc.strerror or exc}", service=self.name) from exc  # fmt: skip
        self._spawned_at = time.monotonic()
        return self

    def wait_ready(self) -> ServiceProcess:
        """Block until the spawned process answers its ready path within ``startup_timeout`` of its spawn;
        when it does not (or the wait is interrupted) it is killed and waited for, so none is left behind."""
        try:
            self._wait_ready(self._spawned_at + self.startup_timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if not self.is_running():
                    raise ServiceStartError(
                        f"{self.name} exited with code {self.returncode} during start-up "
                        f"(log: {self.log_path})",
                        service=self.name,
                        log_tail=self.log_tail(),
                    )
                if self.port is None and self.port_file.exists():
                    self.port = int(self.port_file.read_text(encoding="utf-8"))
                if self.port is not None:
                    try:
                        if client.get(f"{self.url}{self.ready_path}").status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                time.sleep(0.02)
        raise ServiceStartError(
            f"{self.name} was not ready within {self.startup_timeout:.0f}s (log: {self.log_path})",
            service=self.name,
            log_tail=self.log_tail(),
        )

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful: the service deregisters), then SIGKILL if it does not exit in time or the wait
        is interrupted; waited for in every case, and what it left of its process group is killed then."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
            except BaseException:  # Ctrl-C while waiting: it must not outlive us, unwaited
                self.kill()
                raise
            # Just reaped: a command that forked (a shell, a supervisor) leaves no orphan in its group.
            _kill_group(self._popen.pid)
        return self._popen.returncode

    def kill(self) -> None:
        """SIGKILL the process and its process group: the crash case, nothing is cleaned up by the service.
        The group is signalled before the process is reaped, while its id cannot name any other group."""
        if self._popen is not None and self._popen.poll() is None:
            _kill_group(self._popen.pid)
            self._popen.kill()  # in case it left its group
            self._popen.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _kill_group(group: int) -> None:
    """SIGKILL what is left of a child's process group (``start_new_session``: its id is the child's pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
