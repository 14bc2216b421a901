"""Registers the user's own services on their behalf: they know nothing of the registry.

The stack owns one agent, started after the instances are ready and stopped before they are. For each
instance it checks the instance's own health path (directly, not through its fault proxy) every heartbeat
interval and, while that passes, registers the instance's proxied address and heartbeats for it; a
registry that forgot the instance (404: restarted, or evicted it) gets a fresh registration. While the
check fails the agent stays silent, so the registry drops the instance as it would a crashed service. On
stop it deregisters every instance it registered. Its writes carry the stack's registry token. It runs
one event loop in a thread of its own; its events (``agent.*``) go to the stack's own event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from harness.discovery import Registration, RegistryClient
from harness.errors import EnvironmentUnavailable, RegistryError, RegistryRefused
from harness.events import EventLog


@dataclass(frozen=True)
class AgentTarget:
    """One instance the agent keeps registered: what it registers, where it checks health, how often."""

    registration: Registration
    health_url: str
    interval: float


class RegistrationAgent:
    """Heartbeats for instances that cannot, while their own health check passes; explicit start and stop."""

    def __init__(
        self, registry_url: str, *, token: str | None, events: EventLog, check_timeout: float = 1.0
    ) -> None:
        self.registry_url = registry_url
        self._token = token
        self._events = events
        self._check_timeout = check_timeout
        self._targets: tuple[AgentTarget, ...] = ()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._registered: set[str] = set()

    @property
    def registered(self) -> set[str]:
        """The instances the agent has registered and not deregistered."""
        with self._lock:
            return set(self._registered)

    def start(self, targets: Sequence[AgentTarget]) -> RegistrationAgent:
        """Start keeping ``targets`` registered (the first check and registration happen at once)."""
        if self._thread is not None:
            raise RuntimeError("the registration agent was already started")
        self._targets = tuple(targets)
        self._thread = threading.Thread(target=self._main, name="registration-agent", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0):
            raise EnvironmentUnavailable("the registration agent's event loop did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop heartbeating and deregister every instance registered (best effort, within ``timeout``)."""
        loop, stopping = self._loop, self._stopping
        if self._thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        async with (
            RegistryClient(self.registry_url, token=self._token) as registry,
            httpx.AsyncClient(timeout=self._check_timeout, trust_env=False) as http,
        ):
            keepers = [asyncio.create_task(self._keep(registry, http, t)) for t in self._targets]
            await self._stopping.wait()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for target in self._targets:
                await self._deregister(registry, target.registration)

    async def _keep(self, registry: RegistryClient, http: httpx.AsyncClient, target: AgentTarget) -> None:
        registration = target.registration
        name = registration.instance_id
        problem: str | None = None  # the event of the ongoing episode, if any
        while True:
            event: str | None = None
            detail = ""
            try:
                answer = await http.get(target.health_url)
                healthy, detail = answer.status_code == 200, f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                healthy, detail = False, type(exc).__name__
            try:
                if not healthy:
                    event = "agent.instance_unhealthy"
                elif name not in self.registered:
                    await registry.register(registration)
                    self._mark(name, registered=True)
                    self._emit("agent.registered", registration)
                elif not await registry.heartbeat(name):
                    await registry.register(registration)
                    self._emit("agent.reregistered", registration)
            except RegistryRefused as exc:
                event, detail = "agent.registry_refused", str(exc)
            except RegistryError as exc:
                event, detail = "agent.registry_unreachable", str(exc)
            if event != problem:
                if event is not None:
                    self._emit(event, registration, detail=detail)
                elif problem is not None:
                    self._emit("agent.recovered", registration, after=problem)
                problem = event
            await asyncio.sleep(target.interval)

    async def _deregister(self, registry: RegistryClient, registration: Registration) -> None:
        name = registration.instance_id
        if name not in self.registered:
            return
        try:
            await registry.deregister(name)
            self._emit("agent.deregistered", registration)
        except RegistryError as exc:
            self._emit("agent.deregister_failed", registration, detail=str(exc))
        self._mark(name, registered=False)

    def _mark(self, name: str, *, registered: bool) -> None:
        with self._lock:
            if registered:
                self._registered.add(name)
            else:
                self._registered.discard(name)

    def _emit(self, event: str, registration: Registration, **fields: object) -> None:
        self._events.emit(event, instance_id=registration.instance_id, service=registration.service, **fields)
