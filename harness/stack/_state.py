"""What a running stack keeps in its workdir for other processes: the state file (``stack.json``), the
topology it runs (``topology.json``) and the registry's token (``registry.token``).

``harness status``, an attached chaos run and the pytest plugin read the state file instead of asking the
harness process; it is typed here, written atomically, and only trusted while its harness is alive.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

STATE_FILE = "stack.json"
TOPOLOGY_FILE = "topology.json"
REGISTRY_TOKEN_FILE = "registry.token"


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
    registry: str
    instances: list[InstanceRecord]

    def write(self, workdir: Path) -> None:
        """Replace the state file atomically: a reader never sees half of it."""
        path = workdir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def read(cls, workdir: Path) -> StackState | None:
        """The state file of a stack whose harness is still alive; None when absent, unreadable or stale."""
        try:
            state = cls.model_validate_json((workdir / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, ValidationError):
            return None
        return state if pid_alive(state.harness_pid) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts: its parent has not reaped it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
