"""What a running stack keeps in its workdir for other processes: the state file (``stack.json``), the
topology it runs (``topology.json``), the registry's token (``registry.token``) and the processes file
(``processes.json``: every process group the stack started, for the next command when this run dies).

``harness status``, an attached chaos run and the pytest plugin read the state file instead of asking the
harness process; it is typed here, written atomically (readable by this user only), and only trusted while
its harness is alive: the same pid *and* the same start time, so a recycled pid is not taken for it.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from harness._reaper import pid_alive, started

STATE_FILE = "stack.json"
TOPOLOGY_FILE = "topology.json"
REGISTRY_TOKEN_FILE = "registry.token"
PROCESSES_FILE = "processes.json"


class Origin(StrEnum):
    """Who runs an instance: the harness (a reference service or the fault proxy), the harness running a
    user's own command, or nobody here (an ``external`` URL, never started or stopped by the stack)."""

    HARNESS = "harness"
    OWN = "own"
    EXTERNAL = "external"


class InstanceRecord(BaseModel):
    """One process or external instance of the stack, as the state file lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    origin: Origin = Origin.HARNESS
    url: str
    pid: int | None
    proxy: str | None = None  # "host:port" others reach it at
    ready_path: str = "/health"
    log: str | None = None


class StackState(BaseModel):
    """The state file: which harness runs the stack, its registry, and every instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    harness_pid: int
    harness_started: int | None = None  # clock ticks after boot (/proc), with the pid its identity
    registry: str
    instances: list[InstanceRecord]

    def write(self, workdir: Path) -> None:
        """Replace the state file atomically: a reader never sees half of it."""
        write_private(workdir / STATE_FILE, self.model_dump_json(indent=2))

    @classmethod
    def read(cls, workdir: Path) -> StackState | None:
        """The state file of a stack whose harness is still alive; None when absent, unreadable or stale."""
        try:
            state = cls.model_validate_json((workdir / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, ValidationError):
            return None
        return state if same_process(state.harness_pid, state.harness_started) else None


class GroupRecord(BaseModel):
    """One process group the stack started: its leader's pid (the group's id) and start time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pgid: int
    started: int


class StackProcesses(BaseModel):
    """The processes file: written before the first child is forked and again after each, removed when the
    stack has stopped. Left behind, it is how the next command finds what a dead run left, and proves it is
    theirs (a group leader's start time; ``token`` in every child's environment) before ending it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    harness_pid: int
    harness_started: int
    token: str
    reaper_pid: int | None
    reaper_started: int | None
    groups: list[GroupRecord]

    def write(self, workdir: Path) -> None:
        write_private(workdir / PROCESSES_FILE, self.model_dump_json(indent=2))

    @classmethod
    def read(cls, workdir: Path) -> StackProcesses | None:
        """The processes file, alive harness or not; None when absent or unreadable."""
        try:
            return cls.model_validate_json((workdir / PROCESSES_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, ValidationError):
            return None

    def harness_alive(self) -> bool:
        return same_process(self.harness_pid, self.harness_started)

    def reaper_alive(self) -> bool:
        return self.reaper_pid is not None and same_process(self.reaper_pid, self.reaper_started)


def same_process(pid: int, started_at: int | None) -> bool:
    """Whether ``pid`` is alive and, when its start time is known, is still the process that started then
    (not a later one that was given the same pid). A zombie counts as alive: its parent has not reaped it."""
    if not pid_alive(pid):
        return False
    if started_at is None:
        return True
    now = started(pid)
    return now is None or now == started_at  # None: no /proc here, the pid check is all there is


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only this user may read (its folder made if need be)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # made anew, so the mode below applies
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def new_token(path: Path) -> Path:
    """Write a fresh random registry token to ``path``, readable by this user only, and return the path.

    Services read it from the file (a command line is visible to everyone in ``ps``); a new one per run
    means a token seen once is worthless to the next stack.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    os.replace(tmp, path)
    return path
