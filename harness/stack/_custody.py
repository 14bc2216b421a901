"""Every process a stack starts is accounted for, so none outlives it: the stack's reaper is told each process
group as it is forked (``Custody``, which the stack's ``Spawner`` reports to), the workdir's processes file
lists them, and the next command on a workdir ends what a dead run left there (``end_abandoned``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness._reaper import GRACE, KILL_WAIT, STACKS_ENV, SUPPORTED, Reaper, started, sweep
from harness.stack._state import PROCESSES_FILE, STATE_FILE, GroupRecord, StackProcesses, StackState


class Custody:
    """One stack's account of its processes: a token every child carries in its environment, the reaper that
    ends them all when the harness dies, and the processes file for the next command if the reaper dies
    too. ``environment`` and ``adopt`` are what a ``Spawner`` asks of its watcher."""

    def __init__(self, workdir: Path, *, grace: float = GRACE) -> None:
        self.workdir = workdir
        self.grace = grace
        self.token = secrets.token_hex(8)
        self.reaper: Reaper | None = None
        self._record: StackProcesses | None = None
        self._lock = threading.Lock()

    def start(self) -> Custody:
        """Start the reaper and write the processes file, before any child is forked."""
        me = os.getpid()
        reaper_pid = reaper_started = None
        if SUPPORTED:
            self.reaper = Reaper(self.token, self.workdir / "logs" / "reaper.log", grace=self.grace).start()
            reaper_pid = self.reaper.pid
            reaper_started = None if reaper_pid is None else started(reaper_pid)
        self._record = StackProcesses(harness_pid=me, harness_started=started(me) or 0, token=self.token,
                                      reaper_pid=reaper_pid, reaper_started=reaper_started,
                                      groups=[])  # fmt: skip
        self._record.write(self.workdir)
        return self

    def environment(self) -> dict[str, str]:
        """What every child gets on top of the harness's environment: this stack's token after any
        stack's it descends from (``HARNESS_STACKS``)."""
        inherited = os.environ.get(STACKS_ENV)
        return {STACKS_ENV: os.pathsep.join(filter(None, [inherited, self.token]))}

    def adopt(self, name: str, pid: int) -> None:
        """A child was just forked (in a session of its own: its pid is its group's id): tell the reaper,
        then the processes file. Never raises: the child is running and must be stopped, not lost."""
        started_at = started(pid)
        if started_at is None:  # already gone (an own command that failed at once): nothing to end
            return
        if self.reaper is not None:
            self.reaper.adopt(pid, started_at)
        with self._lock:
            if self._record is None:
                return
            groups = [*self._record.groups, GroupRecord(name=name, pgid=pid, started=started_at)]
            self._record = self._record.model_copy(update={"groups": groups})
            with contextlib.suppress(OSError):  # the workdir is gone: the reaper knows the group all the same
                self._record.write(self.workdir)

    def close(self, timeout: float | None = None) -> None:
        """The stack has stopped its processes: the reaper ends any that left their group (it finds them by
        the token), then exits; the processes file goes once nothing is left to end. Again: nothing more."""
        if self.reaper is not None:
            wait = self.grace + KILL_WAIT + 1.0 if timeout is None else timeout
            if self.reaper.close(wait) is None:
                return  # still at work: the file stays for the next command
        with self._lock:
            if self._record is not None:
                self._record = None
                (self.workdir / PROCESSES_FILE).unlink(missing_ok=True)


@dataclass(frozen=True)
class Abandoned:
    """What a dead run had left in a workdir, and what was ended of it."""

    workdir: Path
    harness_pid: int
    processes: int  # ended by this command (its reaper may have ended the rest)

    @property
    def line(self) -> str:
        """One line for the user."""
        if self.processes:
            return (f"ended {self.processes} process(es) a dead harness (pid {self.harness_pid}) left "
                    f"running in {self.workdir}")  # fmt: skip
        return f"the stack a dead harness (pid {self.harness_pid}) ran in {self.workdir} is gone"


def end_abandoned(workdir: Path, *, grace: float = GRACE) -> Abandoned | None:
    """When ``workdir`` holds the processes file of a harness that is gone, end every process still there
    that is provably that stack's (its group with the recorded start time, or its token), wait for its reaper
    if that is still at work, and remove the stale files. None when there is no such file, or its harness
    lives (a stack of a running harness is never touched)."""
    workdir = workdir.resolve()
    record = StackProcesses.read(workdir)
    if record is None or record.harness_alive():
        return None
    deadline = time.monotonic() + grace + KILL_WAIT + 1.0
    while record.reaper_alive() and time.monotonic() < deadline:  # its own reaper is at work: let it end
        time.sleep(0.05)
    groups = {group.pgid: group.started for group in record.groups}
    if record.reaper_pid is not None and record.reaper_started is not None:
        groups[record.reaper_pid] = record.reaper_started  # a stuck reaper is the stack's too
    ended = sweep(groups, record.token, grace=grace)
    (workdir / PROCESSES_FILE).unlink(missing_ok=True)
    if StackState.read(workdir) is None:
        (workdir / STATE_FILE).unlink(missing_ok=True)
    return Abandoned(workdir, record.harness_pid, len(ended))
