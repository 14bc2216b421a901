"""The stack's reaper: a small process that ends every process of the stack when the harness dies, however it
dies (SIGKILL included), whatever state they are in (frozen by SIGSTOP, deaf to SIGTERM, forked away).

The harness starts it with a pipe and tells it, a line each, the process group of every child it forks; the
reaper sits in a session of its own, so a signal to the harness's group does not reach it. End of file on
the pipe means the harness closed it (a stop) or died: the reaper then sends SIGTERM and SIGCONT to every
process of those groups and to every process carrying the stack's token in its environment (a grandchild
that left its group), SIGKILL to what is left after a short grace, and exits once none is left. Identity is
checked before every signal (a group's leader by its start time, a process by its token or group, then a
pidfd), so a recycled pid is never signalled. Linux only (``/proc``); standard library only, because the
reaper runs this file as a script, without the harness's imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

STACKS_ENV = "HARNESS_STACKS"
"""The tokens of the stacks a process descends from, ``os.pathsep``-joined; every child inherits them."""
GRACE = 3.0
"""Seconds the processes of a dead harness get to end on SIGTERM before SIGKILL: nobody waits on their
graceful exit (the registry they would leave is ending too), but a database may want to close."""
KILL_WAIT = 5.0
"""Seconds after SIGKILL before the reaper gives up on a process (in uninterruptible sleep) and says so."""
SUPPORTED = sys.platform.startswith("linux")


@dataclass(frozen=True)
class Found:
    """A process of the stack, as seen in ``/proc``: its pid, its start time (clock ticks after boot, with the
    pid its identity) and its command name."""

    pid: int
    started: int
    name: str


@dataclass(frozen=True)
class _Stat:
    state: str
    pgrp: int
    started: int
    name: str


def _stat(pid: int) -> _Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    name, _, rest = text.partition(" (")[2].rpartition(")")
    fields = rest.split()
    try:  # fields 3 (state), 5 (pgrp) and 22 (starttime) of proc(5); the name is field 2
        return _Stat(state=fields[0], pgrp=int(fields[2]), started=int(fields[19]), name=name)
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts: its parent has not reaped it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot), or None when there is none (a zombie counts)."""
    found = _stat(pid)
    return None if found is None else found.started


def running(pid: int, started_at: int) -> bool:
    """Whether the process ``pid`` that started at ``started_at`` still runs (not a zombie, not recycled)."""
    found = _stat(pid)
    return found is not None and found.started == started_at and found.state not in "ZX"


def group_alive(group: int) -> bool:
    """Whether process group ``group`` has a member that has not ended (zombies have: they only wait to be
    reaped, which a container's pid 1 may never do)."""
    return any((stat := _stat(pid)) is not None and stat.pgrp == group and stat.state not in "ZX"
               for pid in _pids())  # fmt: skip


def carries(environ: bytes, token: str) -> bool:
    """Whether an environment block (``/proc/<pid>/environ``) names ``token`` among its stacks."""
    prefix = f"{STACKS_ENV}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return token.encode() in entry[len(prefix) :].split(os.pathsep.encode())
    return False


def _pids() -> Iterator[int]:
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                yield int(entry.name)


def members(groups: Mapping[int, int], token: str) -> dict[int, Found]:
    """Every live process of the stack: in one of ``groups`` (process group id -> its leader's start time;
    a group whose leader's pid now names a later process was recycled and is not ours), or carrying
    ``token``. Zombies are left out: they have ended. Never this process."""
    ours: dict[int, bool] = {}
    found: dict[int, Found] = {}
    me = os.getpid()
    for pid in _pids():
        stat = _stat(pid)
        if pid == me or stat is None or stat.state in "ZX":
            continue
        if stat.pgrp in groups:
            if stat.pgrp not in ours:
                leader = _stat(stat.pgrp)
                ours[stat.pgrp] = leader is None or leader.started == groups[stat.pgrp]
            if ours[stat.pgrp]:
                found[pid] = Found(pid, stat.started, stat.name)
                continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # another user's, or gone
            continue
        if carries(environ, token):
            found[pid] = Found(pid, stat.started, stat.name)
    return found


def send(process: Found, signum: int) -> bool:
    """Signal ``process`` if it is still the one found (same pid, same start time); False when it is gone.
    The pidfd pins the process while its identity is checked, so a pid recycled meanwhile is never hit."""
    try:
        fd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return False
    except OSError:  # a kernel before 5.3: the identity check, then the pid, is all there is
        try:
            if running(process.pid, process.started):
                os.kill(process.pid, signum)
                return True
        except OSError:
            pass
        return False
    try:
        if not running(process.pid, process.started):
            return False
        signal.pidfd_send_signal(fd, signum)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def sweep(
    groups: Mapping[int, int],
    token: str,
    *,
    grace: float = GRACE,
    say: Callable[[str], None] = lambda _line: None,
) -> list[Found]:
    """End every process of the stack (``members``): SIGTERM then SIGCONT (a frozen one handles its SIGTERM
    too), SIGKILL to what is left after ``grace``; a process that appears meanwhile (forked by one that is
    ending) is found on the next look. Returns when none is left, or ``KILL_WAIT`` after the SIGKILL;
    the processes found, in the order they were."""
    found: dict[int, Found] = {}
    began = time.monotonic()
    killing = False
    while True:
        now = time.monotonic()
        current = members(groups, token)
        if not current:
            break
        if not killing and now - began >= grace:
            killing = True
            say(f"{len(current)} still running after {grace:g}s: SIGKILL")
            for process in current.values():
                send(process, signal.SIGKILL)
        for pid, process in current.items():
            if pid not in found:
                found[pid] = process
                say(f"ending pid {pid} ({process.name})")
                if killing:
                    send(process, signal.SIGKILL)
                else:
                    send(process, signal.SIGTERM)
                    send(process, signal.SIGCONT)
        if killing and now - began >= grace + KILL_WAIT:
            left = ", ".join(f"pid {pid} ({process.name})" for pid, process in current.items())
            say(f"still running after SIGKILL: {left}")
            break
        time.sleep(0.05)
    return list(found.values())


class Reaper:
    """The harness's side: starts the reaper process, tells it each process group, closes the pipe at stop.

    ``adopt`` never raises: a reaper that died (killed by hand) must not break the stack; the processes
    file in the workdir still lets the next command end what a dead run left.
    """

    def __init__(self, token: str, log_path: Path, *, grace: float = GRACE) -> None:
        self.token = token
        self.log_path = log_path
        self.grace = grace
        self._popen: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> Reaper:
        """Start the reaper in a session of its own; its output goes to ``log_path``."""
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._popen = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__],  # isolated: no site, no PYTHON* variables
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal to the harness's group (Ctrl-C) must not reach it
                umask=0o077,
            )
        finally:
            os.close(log)
        self._write(f"token {self.token} {self.grace}\n")
        return self

    def adopt(self, group: int, started_at: int) -> None:
        """Tell the reaper of one more process group (its leader's pid and start time)."""
        self._write(f"group {group} {started_at}\n")

    def _write(self, line: str) -> None:
        with self._lock:
            if self._popen is None or self._popen.stdin is None or self._popen.stdin.closed:
                return
            with contextlib.suppress(OSError):  # a dead reaper: a broken pipe
                self._popen.stdin.write(line.encode())
                self._popen.stdin.flush()

    def close(self, timeout: float) -> int | None:
        """Close the pipe (the reaper ends what is left, then exits) and wait up to ``timeout`` for it;
        its exit code, or None if it is still at work."""
        with self._lock:
            popen = self._popen
            if popen is None:
                return None
            if popen.stdin is not None and not popen.stdin.closed:
                with contextlib.suppress(OSError):
                    popen.stdin.close()
        try:
            return popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def main() -> None:
    """The reaper process: read the token and the groups until end of file, then sweep and exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's; the reaper outlives it
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    header = stdin.readline().decode().split()
    if len(header) != 3 or header[0] != "token":
        return
    token, grace = header[1], float(header[2])
    groups: dict[int, int] = {}
    for line in stdin:
        parts = line.decode().split()
        if len(parts) == 3 and parts[0] == "group":
            groups[int(parts[1])] = int(parts[2])
    ended = sweep(groups, token, grace=grace, say=lambda line: print(f"reaper: {line}", flush=True))
    if ended:
        print(f"reaper: ended {len(ended)} process(es) the harness left", flush=True)


if __name__ == "__main__":
    main()
