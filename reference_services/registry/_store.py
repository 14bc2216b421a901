"""Membership state of the registry: instances, heartbeats, TTL expiry, health and change indexes.

Pure and clock-injected (no I/O, no sleeping): the HTTP layer and the background tasks call in here, and
every change is reported to one listener, which turns it into events and metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from harness.resilience import Clock, SystemClock
from harness.settings import REGISTRY_CHECK_FAILURES, REGISTRY_TTL


class HealthStatus(StrEnum):
    """Health of an instance: only ``passing`` instances are returned by healthy lookups."""

    PASSING = "passing"
    CRITICAL = "critical"


class ChangeKind(StrEnum):
    """What happened to an instance; the event name is ``registry.<kind>``."""

    REGISTERED = "registered"
    REREGISTERED = "reregistered"
    DEREGISTERED = "deregistered"
    EXPIRED = "expired"
    EVICTED = "evicted"
    HEALTH_CHANGED = "health_changed"


@dataclass(frozen=True)
class Registration:
    """What a client asks for when it registers (``ttl=None`` means the registry's default)."""

    instance_id: str
    service: str
    address: str
    port: int
    health_url: str | None = None
    metadata: Mapping[str, str] | None = None
    weight: int = 1
    ttl: float | None = None


@dataclass(frozen=True)
class Instance:
    """One registered instance; replaced, never mutated, so snapshots handed out stay consistent."""

    instance_id: str
    service: str
    address: str
    port: int
    health_url: str | None
    metadata: Mapping[str, str]
    weight: int
    ttl: float
    status: HealthStatus
    consecutive_failures: int
    registered_at: datetime
    last_heartbeat_at: datetime
    last_heartbeat: float  # monotonic seconds
    revision: int  # new on every (re-)registration, so a late health-check result can be told apart
    checked: bool  # a check of its health URL has answered since that URL was registered

    @property
    def expires_at(self) -> float:
        return self.last_heartbeat + self.ttl

    @property
    def healthy(self) -> bool:
        return self.status is HealthStatus.PASSING

    def visible_state(self) -> tuple[object, ...]:
        """What lookups show apart from timing: a change here moves the service's index."""
        return (
            self.address,
            self.port,
            self.health_url,
            tuple(sorted(self.metadata.items())),
            self.weight,
            self.status,
        )


@dataclass(frozen=True)
class Change:
    """One membership or health change, reported to the store's listener."""

    kind: ChangeKind
    instance: Instance
    reason: str
    index: int  # the service's index after the change


@dataclass(frozen=True)
class CheckTarget:
    """An instance to health-check, pinned to the registration it was taken from."""

    instance_id: str
    revision: int
    url: str


@dataclass(frozen=True)
class ServiceCounts:
    """How many instances a service has, and how many of them are passing."""

    instances: int
    healthy: int


class StoreError(Exception):
    """A request the store cannot satisfy."""


class UnknownInstance(StoreError, LookupError):
    """No live instance has this id (never registered, deregistered, expired or evicted)."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"Instance {instance_id!r} is not registered.")
        self.instance_id = instance_id


class ServiceConflict(StoreError):
    """The instance id is registered for another service."""

    def __init__(self, instance_id: str, registered: str, requested: str) -> None:
        super().__init__(
            f"Instance {instance_id!r} is registered for service {registered!r}, not {requested!r};"
            " deregister it first or use another id."
        )
        self.instance_id = instance_id
        self.registered = registered
        self.requested = requested


class StoreFull(StoreError):
    """The store holds ``max_instances`` instances already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The registry holds its maximum of {limit} instances.")
        self.limit = limit


ChangeListener = Callable[[Change], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ignore(change: Change) -> None:
    pass


class InstanceStore:
    """Instances by id and by service, with a global change index and one index per service.

    Indexes follow Consul: every change bumps the global index and sets the service's index to it, so a
    service's index only grows and differs from any index seen before for it. Plain heartbeats do not
    move indexes; registration, removal, health and visible attribute changes do. ``first_index`` lets a
    restarted registry start above any index its predecessor handed out.
    """

    def __init__(
        self,
        *,
        default_ttl: float = REGISTRY_TTL,
        check_failures: int = REGISTRY_CHECK_FAILURES,
        max_instances: int = 10_000,
        clock: Clock | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
        listener: ChangeListener = _ignore,
        first_index: int = 0,
    ) -> None:
        if default_ttl <= 0 or check_failures < 1 or max_instances < 1 or first_index < 0:
            raise ValueError(
                "default_ttl must be > 0, check_failures and max_instances >= 1, first_index >= 0"
            )
        self.default_ttl = default_ttl
        self.check_failures = check_failures
        self.max_instances = max_instances
        self.clock: Clock = clock or SystemClock()
        self._wall_clock = wall_clock
        self._listener = listener
        self._instances: dict[str, Instance] = {}
        self._members: dict[str, set[str]] = {}
        self._index = first_index
        self._service_index: dict[str, int] = {}
        self._revision = 0
        self._waiters: dict[str, asyncio.Event] = {}
        self._new_targets = asyncio.Event()  # binds to the loop of its first waiter, not this one
        self._closed = False

    # -- reading -----------------------------------------------------------------------------------

    @property
    def index(self) -> int:
        """The global change index (0 before the first change)."""
        return self._index

    def __len__(self) -> int:
        return len(self._instances)

    def service_index(self, service: str) -> int:
        """The service's index: 0 if it never had an instance, else the index of its last change."""
        return self._service_index.get(service, 0)

    def get(self, instance_id: str) -> Instance | None:
        """The live instance with this id (an overdue one is expired on the spot), or None."""
        return self._live(instance_id)

    def lookup(self, service: str, *, healthy_only: bool = True) -> tuple[int, list[Instance]]:
        """The service's index and its instances sorted by id (passing ones only, by default)."""
        members = (self._instances[i] for i in sorted(self._members.get(service, ())))
        return self.service_index(service), [m for m in members if m.healthy or not healthy_only]

    def services(self) -> dict[str, ServiceCounts]:
        """Every service that has at least one instance, by name."""
        counts: dict[str, ServiceCounts] = {}
        for service in sorted(self._members):
            instances = [self._instances[i] for i in self._members[service]]
            counts[service] = ServiceCounts(len(instances), sum(1 for m in instances if m.healthy))
        return counts

    def expires_in(self, instance: Instance) -> float:
        """Seconds until ``instance`` expires without another heartbeat (0 when overdue)."""
        return max(0.0, instance.expires_at - self.clock.monotonic())

    def check_targets(self, *, unchecked_only: bool = False) -> list[CheckTarget]:
        """Every instance with a health URL (or only those awaiting their first check), pinned to its
        current registration."""
        return [
            CheckTarget(i.instance_id, i.revision, i.health_url)
            for i in self._instances.values()
            if i.health_url is not None and not (unchecked_only and i.checked)
        ]

    # -- changing ----------------------------------------------------------------------------------

    def register(self, registration: Registration) -> tuple[Instance, bool]:
        """Add or refresh an instance; returns it and whether it is new.

        An instance with a health URL starts critical (out of healthy lookups) until its first check
        passes, as in Consul: registering again after an eviction or expiry cannot skip the checks. A
        refresh of a live instance with the same health URL keeps its health and failure count (so it
        cannot escape a failing check by re-registering); a new health URL starts over unchecked. Without
        a health URL an instance is passing while it heartbeats. A refresh counts as a heartbeat and moves
        the service's index only if what lookups show changed.
        """
        existing = self._live(registration.instance_id)
        if existing is not None and existing.service != registration.service:
            raise ServiceConflict(registration.instance_id, existing.service, registration.service)
        if existing is None and len(self._instances) >= self.max_instances:
            raise StoreFull(self.max_instances)
        now, wall = self.clock.monotonic(), self._wall_clock()
        self._revision += 1
        status, failures, checked = HealthStatus.CRITICAL, 0, False
        if registration.health_url is None:
            status, checked = HealthStatus.PASSING, True
        elif existing is not None and existing.health_url == registration.health_url:
            status, failures, checked = existing.status, existing.consecutive_failures, existing.checked
        instance = Instance(
            instance_id=registration.instance_id,
            service=registration.service,
            address=registration.address,
            port=registration.port,
            health_url=registration.health_url,
            metadata=dict(registration.metadata or {}),
            weight=registration.weight,
            ttl=registration.ttl if registration.ttl is not None else self.default_ttl,
            status=status,
            consecutive_failures=failures,
            registered_at=existing.registered_at if existing is not None else wall,
            last_heartbeat_at=wall,
            last_heartbeat=now,
            revision=self._revision,
            checked=checked,
        )
        self._instances[instance.instance_id] = instance
        self._members.setdefault(instance.service, set()).add(instance.instance_id)
        if not checked:
            self._new_targets.set()
        if existing is None:
            self._report(ChangeKind.REGISTERED, instance, "registered", bump=True)
        else:
            changed = existing.visible_state() != instance.visible_state()
            self._report(ChangeKind.REREGISTERED, instance, "registered again", bump=changed)
        return instance, existing is None

    def heartbeat(self, instance_id: str) -> Instance:
        """Push the instance's expiry one TTL ahead; raises UnknownInstance if it is not live."""
        instance = self._require(instance_id)
        refreshed = replace(
            instance, last_heartbeat=self.clock.monotonic(), last_heartbeat_at=self._wall_clock()
        )
        self._instances[instance_id] = refreshed
        return refreshed

    def deregister(self, instance_id: str) -> Instance:
        """Remove the instance at its own request; raises UnknownInstance if it is not live."""
        instance = self._require(instance_id)
        self._remove(instance, ChangeKind.DEREGISTERED, "deregistered by the instance")
        return instance

    def sweep(self) -> float | None:
        """Expire every overdue instance; returns the monotonic time of the next expiry, if any."""
        now = self.clock.monotonic()
        overdue = [i for i in self._instances.values() if i.expires_at <= now]
        for instance in overdue:
            self._expire(instance)
        return min((i.expires_at for i in self._instances.values()), default=None)

    def record_check(self, target: CheckTarget, *, passed: bool, reason: str) -> Instance | None:
        """Apply one health-check result; returns the instance after it, or None if it was removed.

        Results for a registration that has since been replaced or removed are ignored. A failure makes
        a passing instance critical at once; ``check_failures`` failures in a row evict it (counting
        from registration: an instance that never passed is evicted too); a pass makes a critical
        instance passing.
        """
        instance = self._instances.get(target.instance_id)
        if instance is None or instance.revision != target.revision:
            return None
        if passed:
            updated = replace(instance, consecutive_failures=0, status=HealthStatus.PASSING, checked=True)
            self._instances[instance.instance_id] = updated
            if not instance.healthy:
                self._report(ChangeKind.HEALTH_CHANGED, updated, f"health check passed: {reason}", bump=True)
            return updated
        failures = instance.consecutive_failures + 1
        updated = replace(instance, consecutive_failures=failures, status=HealthStatus.CRITICAL, checked=True)
        if failures >= self.check_failures:
            self._remove(
                updated, ChangeKind.EVICTED, f"{failures} health checks failed in a row; last: {reason}"
            )
            return None
        self._instances[instance.instance_id] = updated
        if instance.healthy:
            self._report(ChangeKind.HEALTH_CHANGED, updated, f"health check failed: {reason}", bump=True)
        return updated

    # -- blocking queries --------------------------------------------------------------------------

    async def wait_for_change(self, service: str, index: int) -> None:
        """Return once the service's index differs from ``index`` or the store closes.

        Callers bound the wait themselves (``asyncio.timeout``); cancelling it leaves nothing behind.
        """
        while not self._closed and self.service_index(service) == index:
            await self._waiters.setdefault(service, asyncio.Event()).wait()

    async def wait_for_new_targets(self) -> None:
        """Return once an instance registered since the last call awaits its first health check.

        One waiter (the health checker) consumes the signal; it then asks ``check_targets(unchecked_only=
        True)``, so a registration between the wake-up and that call is seen by one or the other.
        """
        await self._new_targets.wait()
        self._new_targets.clear()

    def close(self) -> None:
        """Wake every blocked query and make new ones return at once (shutdown)."""
        self._closed = True
        for event in self._waiters.values():
            event.set()
        self._waiters.clear()

    # -- internals ---------------------------------------------------------------------------------

    def _live(self, instance_id: str) -> Instance | None:
        instance = self._instances.get(instance_id)
        if instance is not None and instance.expires_at <= self.clock.monotonic():
            self._expire(instance)
            return None
        return instance

    def _require(self, instance_id: str) -> Instance:
        instance = self._live(instance_id)
        if instance is None:
            raise UnknownInstance(instance_id)
        return instance

    def _expire(self, instance: Instance) -> None:
        self._remove(instance, ChangeKind.EXPIRED, f"no heartbeat for {instance.ttl:g}s")

    def _remove(self, instance: Instance, kind: ChangeKind, reason: str) -> None:
        del self._instances[instance.instance_id]
        members = self._members[instance.service]
        members.discard(instance.instance_id)
        if not members:
            del self._members[instance.service]  # its index stays, so watchers see the service go empty
        self._report(kind, instance, reason, bump=True)

    def _report(self, kind: ChangeKind, instance: Instance, reason: str, *, bump: bool) -> None:
        if bump:
            self._index += 1
            self._service_index[instance.service] = self._index
            event = self._waiters.pop(instance.service, None)
            if event is not None:
                event.set()
        self._listener(Change(kind, instance, reason, self.service_index(instance.service)))
