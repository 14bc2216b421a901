"""Keeps one instance registered: register, heartbeat, re-register when forgotten, deregister on exit."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from harness.discovery._models import Registration
from harness.discovery._registry_client import RegistryClient
from harness.errors import RegistryError, RegistryRefused
from harness.events import EventLog


class RegistrationKeeper:
    """Runs the heartbeat loop of one instance as a background task.

    ``start`` registers once and fails loudly if the registry refuses; after that the loop never gives up:
    an unreachable registry, or one that refuses our token (it restarted with another), is logged once
    per episode (``discovery.registry_unreachable`` / ``discovery.registry_refused``) and retried each
    period, and a registry that answers 404 to a heartbeat (it restarted, or expired us) gets a fresh
    registration.
    """

    def __init__(
        self,
        registry: RegistryClient,
        registration: Registration,
        *,
        interval: float,
        events: EventLog | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("heartbeat interval must be positive")
        self.registry = registry
        self.registration = registration
        self.interval = interval
        self.events = events or EventLog("discovery")
        self.reregistrations = 0
        self._task: asyncio.Task[None] | None = None
        self._problem: str | None = None  # the event of the ongoing episode, if any

    async def start(self) -> None:
        await self.registry.register(self.registration)
        self.events.emit(
            "discovery.registered",
            instance_id=self.registration.instance_id,
            service=self.registration.service,
        )
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat-{self.registration.instance_id}")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if not await self.registry.heartbeat(self.registration.instance_id):
                    await self.registry.register(self.registration)
                    self.reregistrations += 1
                    self.events.emit(
                        "discovery.reregistered",
                        instance_id=self.registration.instance_id,
                        service=self.registration.service,
                    )
                if self._problem is not None:
                    self._problem = None
                    self.events.emit(
                        "discovery.registry_recovered", instance_id=self.registration.instance_id
                    )
            except RegistryRefused as exc:
                self._episode("discovery.registry_refused", exc)
            except RegistryError as exc:
                self._episode("discovery.registry_unreachable", exc)

    def _episode(self, event: str, exc: RegistryError) -> None:
        """Log the first failure of a kind; the same failure again is the same episode."""
        if self._problem != event:
            self._problem = event
            self.events.emit(event, instance_id=self.registration.instance_id, error=str(exc))

    async def stop(self, *, deregister: bool = True) -> None:
        """Stop heartbeating and, by default, remove the instance from the registry (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if deregister:
            try:
                await self.registry.deregister(self.registration.instance_id)
                self.events.emit(
                    "discovery.deregistered",
                    instance_id=self.registration.instance_id,
                    service=self.registration.service,
                )
            except RegistryError as exc:
                self.events.emit(
                    "discovery.deregister_failed", instance_id=self.registration.instance_id, error=str(exc)
                )

    async def __aenter__(self) -> RegistrationKeeper:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
