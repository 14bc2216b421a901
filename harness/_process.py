"""Start a service as a real child process, wait until it is ready, and stop it without leaving orphans.

Each child runs in a session (and process group) of its own, with umask 077; stopping it signals the whole
group, so a worker it forked or a grandchild ends with it, and a frozen one (SIGSTOP) is continued to
handle its SIGTERM. Children get SIGTERM when their parent dies (PR_SET_PDEATHSIG), even by SIGKILL. Linux
ties that signal to the *thread* that forked, not the process, so a child forked from a worker thread dies
when that thread ends; a ``Spawner`` forks every child from one thread its owner keeps alive, for any
executable, and tells its ``Watcher`` (the stack's reaper) of each: the death signal alone cannot end a
frozen child, one that ignores SIGTERM, or what a child forked.
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
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import httpx

from harness._reaper import SUPPORTED, group_alive, pid_alive
from harness._spec import ProcessSpec
from harness.errors import ServiceStartError
from harness.net import port_in_use
from harness.signals import deferred

_PR_SET_PDEATHSIG = 1
T = TypeVar("T")
CHILD_UMASK = 0o077
"""Files a child creates (databases, their -wal and -shm, logs) are its user's alone."""
_PORT_TAKEN = ("address already in use", "eaddrinuse", "errno 98")
"""How a child's output says it could not bind its port (Python, Go, Node, the JVM all say one of these)."""


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec to get SIGTERM when its parent thread ends (the harness dies, even by
    SIGKILL), so none is orphaned. libc is looked up here, in the parent: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_death_signal


class Watcher(Protocol):
    """Who must know of every child a spawner forks (a stack's ``Custody``, which tells its reaper)."""

    def environment(self) -> Mapping[str, str]:
        """What every child carries in its environment, to be known by after its parent is gone."""
        ...

    def adopt(self, name: str, pid: int) -> None:
        """A child was just forked, in a session of its own (its pid is its group's id); never raises."""
        ...


class Spawner:
    """Forks children from one long-lived thread that its owner starts and stops (a Stack owns one).

    The death signal then fires only when the harness dies or the owner stops the spawner, whichever
    thread asked for the child: ``Stack.restart`` from a worker thread, the fault proxy's supervisor.
    Nothing is asked of the child, so this works for users' own executables too. Stopping the spawner
    ends its thread, which sends SIGTERM to every child it forked: stop the children first. A ``watcher``
    is told of every child the moment it is forked, and gives each its environment.
    """

    def __init__(self, name: str = "harness-spawner", *, watcher: Watcher | None = None) -> None:
        self.name = name
        self.watcher = watcher
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
        self._log_from = 0  # where this spawn's output starts in the log (restarts append to it)

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

    def again(self, port: int | None = None) -> ServiceProcess:
        """A new, unstarted process of the same spec on the port this one had, so its address stays valid;
        or on ``port`` (0: a harness child binds any free one), when that port was taken meanwhile."""
        spec = self.spec.with_port((self.port or self.spec.port) if port is None else port)
        return ServiceProcess(spec, workdir=None if self._fresh_workdir else self.workdir,
                              startup_timeout=self.startup_timeout,
                              spawner=self.spawner)  # fmt: skip

    def start(self) -> Self:
        """Spawn the process and block until it answers its ready path; raise ServiceStartError otherwise."""
        return self.spawn().wait_ready()

    def spawn(self) -> Self:
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
        watcher = self.spawner.watcher if self.spawner is not None else None
        env = {**os.environ, **self.spec.environment(), **(watcher.environment() if watcher else {})}
        command = self.command()
        death_signal = _die_with_parent()
        with os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            self._log_from = os.fstat(log.fileno()).st_size

            def fork() -> subprocess.Popen[bytes]:
                child = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=self.spec.cwd,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches the harness, which stops us
                    preexec_fn=death_signal,
                    umask=CHILD_UMASK,
                )
                if watcher is not None:  # at once, on the forking thread: the reaper knows it from now on
                    watcher.adopt(self.name, child.pid)
                return child

            try:
                with deferred():  # a Ctrl-C while the child is forked waits until it is ours to stop
                    self._popen = fork() if self.spawner is None else self.spawner.call(fork)
            except OSError as exc:  # an own command that does not exist or may not run
                where = self.spec.cwd or Path.cwd()
                raise ServiceStartError(f"{self.name}: cannot run {command[0]!r} in {where}: "
                                        f"{exc.strerror or exc}", service=self.name) from exc  # fmt: skip
        self._spawned_at = time.monotonic()
        return self

    def wait_port(self) -> int:
        """Block until the spawned process's port is known: an own command's at once, a harness child's once
        it wrote its port file (right after it bound), within ``startup_timeout`` of its spawn. Killed and
        waited for when it exits first, does not in time, or the wait is interrupted."""
        try:
            while self.port is None:
                self._check_alive()
                if self.port_file.exists():
                    self.port = int(self.port_file.read_text(encoding="utf-8"))
                    break
                self._check_deadline()
                time.sleep(0.005)  # short: the stack points the instance's proxy at it as soon as it is known
        except BaseException:
            self.kill()
            raise
        return self.port

    def wait_ready(self) -> Self:
        """Block until the spawned process answers its ready path within ``startup_timeout`` of its spawn;
        when it does not (or the wait is interrupted) it is killed and waited for, so none is left behind."""
        try:
            self.wait_port()
            with httpx.Client(timeout=1.0, trust_env=False) as client:
                while True:
                    self._check_alive()
                    try:
                        if client.get(f"{self.url}{self.ready_path}").status_code == 200:
                            return self
                    except httpx.TransportError:
                        pass
                    self._check_deadline()
                    time.sleep(0.02)
        except BaseException:
            self.kill()
            raise

    def _check_alive(self) -> None:
        if not self.is_running():
            raise ServiceStartError(
                f"{self.name} exited with code {self.returncode} during start-up (log: {self.log_path})",
                service=self.name,
                log_tail=self.log_tail(),
            )

    def _check_deadline(self) -> None:
        if time.monotonic() >= self._spawned_at + self.startup_timeout:
            raise ServiceStartError(
                f"{self.name} was not ready within {self.startup_timeout:.0f}s (log: {self.log_path})",
                service=self.name,
                log_tail=self.log_tail(),
            )

    def lost_its_port(self) -> bool:
        """After a failed start on a port given beforehand: whether it failed because that port was taken
        (its output says so, or the port is held now), so that another port would do."""
        if self.spec.port == 0 or self.is_running():
            return False
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_from)
                output = log.read().decode("utf-8", errors="replace").lower()
        except OSError:
            output = ""
        return any(sign in output for sign in _PORT_TAKEN) or port_in_use(self.host, self.spec.port)

    def note(self, line: str) -> None:
        """A line from the harness in this process's log, between its outputs."""
        with os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as log:
            log.write(f"[harness] {line}\n")

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def group_running(self) -> bool:
        """Whether the process runs, or anything left in its group (a forked worker, a grandchild)."""
        if self._popen is None:
            return False
        return self._popen.poll() is None or (self._group_ours() and _group_alive(self._popen.pid))

    def _group_ours(self) -> bool:
        """Whether the process's pid still names its group only: until the process is reaped, always; after,
        while no later process has that pid (an id stays reserved while a group has a member, so a group
        of that id is this one's leftovers, never a recycled one)."""
        assert self._popen is not None
        return self._popen.returncode is None or not pid_alive(self._popen.pid)

    def _signal_group(self, *signums: int) -> None:
        assert self._popen is not None
        if self._group_ours():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                for signum in signums:
                    os.killpg(self._popen.pid, signum)  # ``start_new_session``: its id is the child's pid

    def terminate(self) -> None:
        """SIGTERM to the process's whole group, then SIGCONT: every process in it handles the SIGTERM, a
        frozen one (SIGSTOP) too. Returns at once; ``stop`` waits."""
        if self.group_running():
            self._signal_group(signal.SIGTERM, signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to its group (graceful: the service deregisters), then SIGKILL to what is left of the group
        after ``timeout`` or when the wait is interrupted; the process is waited for in every case."""
        if self._popen is None:
            return None
        self.terminate()
        deadline = time.monotonic() + timeout
        try:
            while self.group_running() and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:  # Ctrl-C while waiting too: nothing of it may outlive us, unwaited
            self.kill()
        return self._popen.returncode

    def kill(self) -> None:
        """SIGKILL the process and its process group: the crash case, nothing is cleaned up by the service.
        The group is signalled before the process is reaped, while its id cannot name any other group;
        what is left of it after (a worker an own command forked) too, unless the id names another now."""
        if self._popen is None:
            return
        self._signal_group(signal.SIGKILL)
        if self._popen.poll() is None:
            self._popen.kill()  # in case it left its group
            self._popen.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _group_alive(group: int) -> bool:
    """Whether a process group has a live member (not a zombie: a container's pid 1 may never reap one)."""
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return group_alive(group) if SUPPORTED else True
