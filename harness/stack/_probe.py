"""Looking at a stack from outside: does an instance answer its health path, does the registry list every
instance, and what ``harness status`` shows for a stack another harness process runs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness._reaper import pid_alive
from harness.errors import EnvironmentUnavailable
from harness.stack._state import InstanceRecord, Origin, StackState


@dataclass(frozen=True)
class InstanceStatus:
    """What ``harness status`` shows for one process or external instance."""

    name: str
    kind: str
    url: str
    pid: int | None
    running: bool
    health: str  # "ok", "unhealthy", "unreachable", "not running" or "exited (code N)"
    origin: Origin = Origin.HARNESS


def health(url: str, path: str = "/health", *, timeout: float = 1.0) -> str:
    """``ok`` when ``GET url+path`` answers 200, ``unhealthy`` for another answer, ``unreachable`` if none."""
    try:
        answer = httpx.get(f"{url}{path}", timeout=timeout, trust_env=False)
    except httpx.TransportError:
        return "unreachable"
    return "ok" if answer.status_code == 200 else "unhealthy"


def status_of(item: InstanceRecord) -> InstanceStatus:
    """One instance of the state file: a process by its pid then its health path, an external one by its
    health path alone (nobody here runs it)."""
    if item.origin is not Origin.EXTERNAL and (item.pid is None or not pid_alive(item.pid)):
        return InstanceStatus(item.name, item.kind, item.url, item.pid, False, "not running", item.origin)
    return InstanceStatus(item.name, item.kind, item.url, item.pid, True,
                          health(item.url, item.ready_path), item.origin)  # fmt: skip


def read_status(workdir: Path) -> list[InstanceStatus]:
    """Status of the stack a ``harness up`` in ``workdir`` is running, from its state file."""
    state = StackState.read(workdir.resolve())
    if state is None:
        raise EnvironmentUnavailable(
            f"no stack is running in {workdir} (no live `harness up` there); start one with `harness up`"
        )
    return [status_of(item) for item in state.instances]


def wait_registered(registry_url: str, kinds: Iterable[str], deadline: float) -> None:
    """Until the registry lists, for each kind given once per instance, that many healthy instances; so the
    first call finds them all. EnvironmentUnavailable naming expected and seen counts at ``deadline``."""
    expected = Counter(kinds)
    seen: dict[str, int] = {}
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            try:
                services = http.get(f"{registry_url}/v1/services").json()["services"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise EnvironmentUnavailable(
                    f"the registry did not answer its services list: {exc!r}"
                ) from exc
            seen = {kind: services.get(kind, {}).get("healthy", 0) for kind in expected}
            if seen == expected:
                return
            if time.monotonic() >= deadline:
                raise EnvironmentUnavailable(
                    f"instances did not all register in time: expected {dict(expected)}, saw {seen}"
                )
            time.sleep(0.05)  # a poll interval under the deadline
