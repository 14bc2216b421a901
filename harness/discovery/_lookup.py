"""Where a ServiceClient finds instances: a fixed list, or the registry through a cache that follows changes.

By default the registry cache holds one blocking query per service open at all times, so membership
changes reach the client within one round trip; a ``DiscoveryRefresh`` per service can make it poll
instead, or keep its first answer forever (a cache that never refreshes is a configuration some
clients have, and the chaos experiments show what it costs). Whatever the mode, it keeps serving the
last known list while the registry is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.discovery._models import Instance
from harness.discovery._registry_client import RegistryClient
from harness.events import EventLog

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class DiscoveryRefresh:
    """How a cached instance list follows the registry.

    ``watch``: a blocking query always open, so a change arrives as it happens (``interval`` unused).
    No watch and ``interval > 0``: a plain lookup every ``interval`` seconds. No watch and
    ``interval == 0``: the first answer that lists an instance is kept forever, never refreshed.
    """

    watch: bool = True
    interval: float = 1.0

    def __post_init__(self) -> None:
        if not (self.interval >= 0 and math.isfinite(self.interval)):
            raise ValueError(f"refresh_interval must be >= 0 seconds, got {self.interval}")
        if self.watch and self.interval == 0:
            raise ValueError(
                "refresh_interval = 0 (never refresh) contradicts watch = true; set watch = false"
            )

    @property
    def never(self) -> bool:
        """The first non-empty answer is final."""
        return not self.watch and self.interval == 0


class InstanceSource(Protocol):
    """Anything that can list the instances of a service right now."""

    async def instances(self, service: str) -> Sequence[Instance]: ...


class StaticInstances:
    """A fixed list of instances, for services reached without a registry."""

    def __init__(self, instances: Iterable[Instance]) -> None:
        self._by_service: dict[str, tuple[Instance, ...]] = {}
        for instance in instances:
            self._by_service[instance.service] = (*self._by_service.get(instance.service, ()), instance)

    async def instances(self, service: str) -> Sequence[Instance]:
        return self._by_service.get(service, ())


class RegistryLookup:
    """Registry-backed instance lists, cached per service and refreshed by one task per service.

    ``refresh`` says how each service's list is refreshed (``DiscoveryRefresh()``, a watch, for a
    service it does not name).
    """

    def __init__(
        self,
        registry: RegistryClient,
        *,
        wait: float = 30.0,
        retry_delay: float = 0.2,
        max_retry_delay: float = 2.0,
        refresh: Mapping[str, DiscoveryRefresh] | None = None,
        events: EventLog | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.wait = wait
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.refresh = dict(refresh or {})
        self.events = events or EventLog("discovery")
        self._sleep = sleep
        self._lists: dict[str, tuple[Instance, ...]] = {}
        self._indexes: dict[str, int] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def refresh_of(self, service: str) -> DiscoveryRefresh:
        return self.refresh.get(service) or DiscoveryRefresh()

    async def instances(self, service: str) -> Sequence[Instance]:
        """The current list; the first call for a service asks the registry and starts its refresh task."""
        watch = self._watches.get(service)
        settled = self.refresh_of(service).never and bool(self._lists.get(service))
        if (watch is None or watch.done()) and not settled:
            try:
                if service not in self._lists:
                    await self._refresh(service, index=None)
            finally:
                # Even when the registry is down now, watch so the list fills in once it is back.
                self._watches[service] = asyncio.create_task(self._watch(service), name=f"watch-{service}")
        return self._lists.get(service, ())

    def known(self, service: str) -> tuple[Instance, ...]:
        """The last list seen for ``service``, without asking anyone."""
        return self._lists.get(service, ())

    async def wait_for_change(self, service: str, within: float) -> bool:
        """Wait until the watched list of ``service`` changes; True if it did ``within`` seconds."""
        event = self._changed.setdefault(service, asyncio.Event())
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), within)
        except TimeoutError:
            return False
        return True

    async def _refresh(self, service: str, index: int | None) -> None:
        answer = await self.registry.instances(
            service, index=index, wait=self.wait if index is not None else None
        )
        new = tuple(view.to_instance() for view in answer.instances)
        old = self._lists.get(service)
        self._indexes[service] = answer.index
        self._lists[service] = new
        if old != new:
            old_ids = {i.id for i in old or ()}
            new_ids = {i.id for i in new}
            self.events.emit(
                "discovery.membership_changed",
                service=service,
                index=answer.index,
                instances=sorted(new_ids),
                added=sorted(new_ids - old_ids),
                removed=sorted(old_ids - new_ids),
            )
            self._changed.setdefault(service, asyncio.Event()).set()

    async def _watch(self, service: str) -> None:
        """Keep the list of ``service`` current as its ``DiscoveryRefresh`` says, until cancelled."""
        mode = self.refresh_of(service)
        delay = self.retry_delay
        down = False
        while not (mode.never and self._lists.get(service)):  # kept forever: the task is done
            if not mode.watch and service in self._lists and not down:
                # A poll waits one interval after each answer; "never" retries an empty first answer.
                await self._sleep(mode.interval or self.retry_delay)
            try:
                index = self._indexes.get(service, 0) if mode.watch else None
                await self._refresh(service, index=index)
            except Exception as exc:  # a refresh task must outlive any one failed query, whatever the cause
                if not down:
                    down = True
                    self.events.emit(
                        "discovery.registry_unreachable",
                        service=service,
                        error=str(exc),
                        serving=len(self._lists.get(service, ())),
                    )
                await self._sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            if down:
                down = False
                self.events.emit("discovery.registry_recovered", service=service)
            delay = self.retry_delay

    async def __aenter__(self) -> RegistryLookup:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in self._watches.values():
            task.cancel()
        for task in self._watches.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watches.clear()
