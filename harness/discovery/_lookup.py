"""Where a ServiceClient finds instances: a fixed list, or the registry through a cache that follows changes.

The registry cache holds one blocking query per service open at all times, so membership changes reach
the client within one round trip, and it keeps serving the last known list while the registry is down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from harness.discovery._models import Instance
from harness.discovery._registry_client import RegistryClient
from harness.events import EventLog


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
    """Registry-backed instance lists, cached per service and refreshed by a long-poll watch task."""

    def __init__(
        self,
        registry: RegistryClient,
        *,
        wait: float = 30.0,
        retry_delay: float = 0.2,
        max_retry_delay: float = 2.0,
        events: EventLog | None = None,
    ) -> None:
        self.registry = registry
        self.wait = wait
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.events = events or EventLog("discovery")
        self._lists: dict[str, tuple[Instance, ...]] = {}
        self._indexes: dict[str, int] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    async def instances(self, service: str) -> Sequence[Instance]:
        """The current list; the first call for a service asks the registry and starts its watch."""
        watch = self._watches.get(service)
        if watch is None or watch.done():
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
        delay = self.retry_delay
        down = False
        while True:
            try:
                await self._refresh(service, index=self._indexes.get(service, 0))
            except Exception as exc:  # a watch must outlive any one failed query, whatever the cause
                if not down:
                    down = True
                    self.events.emit(
                        "discovery.registry_unreachable",
                        service=service,
                        error=str(exc),
                        serving=len(self._lists.get(service, ())),
                    )
                await asyncio.sleep(delay)
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
