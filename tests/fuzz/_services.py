"""The services under fuzzing, each a real process on loopback, started the way the stack starts them.

The orchestrator is fuzzed with its participants registered, so its readiness and its saga answer as in
a real stack; every other service runs alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from harness.stack import ProcessSpec, ServiceProcess, SettingValue
from tests._children import child_env

HEARTBEAT: dict[str, SettingValue] = {"heartbeat_interval": 0.2, "ttl": 2.0}


def service_process(
    kind: str, workdir: Path, settings: Mapping[str, SettingValue] | None = None, *, database: bool = True
) -> ServiceProcess:
    """``harness serve KIND`` with its own event log (and database), not started yet."""
    name = f"{kind}-1" if kind != "registry" else kind
    own: dict[str, SettingValue] = {"event_log": workdir / f"{name}.jsonl"}
    if database:
        own |= {"instance_id": name, "database": workdir / f"{name}.sqlite3"}
    spec = ProcessSpec(name, kind, {**own, **(settings or {})}, env=child_env())
    return ServiceProcess(spec, workdir=workdir)


@contextlib.contextmanager
def running(*processes: ServiceProcess) -> Iterator[None]:
    """Start the processes in order (each ready before the next), stop them all in reverse."""
    started: list[ServiceProcess] = []
    try:
        for process in processes:
            started.append(process)
            process.start()
        yield
    finally:
        for process in reversed(started):
            process.stop()


@contextlib.contextmanager
def alone(kind: str, workdir: Path, *, database: bool = True) -> Iterator[str]:
    """One service on its own; yields its URL."""
    process = service_process(kind, workdir, database=database)
    with running(process):
        yield process.url


@contextlib.contextmanager
def orchestrator_stack(workdir: Path) -> Iterator[str]:
    """A registry, users, notifications and the orchestrator, registered and ready; yields its URL."""
    registry = service_process("registry", workdir, database=False)
    with running(registry):
        peers = {**HEARTBEAT, "registry": registry.url}
        users = service_process("users", workdir, peers)
        notifications = service_process("notifications", workdir, peers)
        orchestrator = service_process(
            "orchestrator", workdir, {**peers, "saga_deadline": 1.0, "call_timeout": 0.5}
        )
        with running(users, notifications, orchestrator):
            wait_ready(orchestrator.url, within=20.0)
            yield orchestrator.url


def wait_ready(url: str, *, within: float) -> None:
    """Poll ``GET /ready`` until it answers 200 (the orchestrator sees its participants), with a deadline."""
    deadline = time.monotonic() + within
    with httpx.Client(base_url=url, trust_env=False, timeout=2.0) as http:
        while True:
            answer = http.get("/ready")
            if answer.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} not ready within {within:g} s: {answer.text}")
            time.sleep(0.05)  # a poll interval under a deadline, not a wait for something to happen
