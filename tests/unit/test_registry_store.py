"""The registry's membership store driven by a manual clock: TTL expiry, indexes, health and eviction."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.resilience import ManualClock
from reference_services.registry._store import (
    Change,
    ChangeKind,
    CheckTarget,
    HealthStatus,
    InstanceStore,
    Registration,
    ServiceConflict,
    StoreFull,
    UnknownInstance,
)

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
URL = "http://h/health"


class Harness:
    """A store with a manual clock (monotonic and wall time move together) and a list of its changes."""

    def __init__(
        self, *, default_ttl: float = 10.0, check_failures: int = 3, max_instances: int = 100
    ) -> None:
        self.clock = ManualClock(100.0)
        self.changes: list[Change] = []
        self.store = InstanceStore(
            default_ttl=default_ttl,
            check_failures=check_failures,
            max_instances=max_instances,
            clock=self.clock,
            wall_clock=lambda: EPOCH + timedelta(seconds=self.clock.monotonic()),
            listener=self.changes.append,
        )

    def register(self, instance_id: str, service: str = "users", **fields: Any) -> bool:
        registration = Registration(instance_id=instance_id, service=service, address="10.0.0.1", port=80)
        _, created = self.store.register(replace(registration, **fields))
        return created

    def kinds(self) -> list[ChangeKind]:
        return [c.kind for c in self.changes]

    def target(self, instance_id: str) -> CheckTarget:
        return next(t for t in self.store.check_targets() if t.instance_id == instance_id)

    def fail(self, instance_id: str) -> None:
        self.store.record_check(self.target(instance_id), passed=False, reason="status 503")

    def pass_(self, instance_id: str) -> None:
        self.store.record_check(self.target(instance_id), passed=True, reason="status 200")

    def register_passing(self, instance_id: str) -> None:
        """Register with a health URL and pass the first check, as a healthy instance does."""
        self.register(instance_id, health_url=URL)
        self.pass_(instance_id)


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.mark.behaviour("registry.registration")
class TestRegistration:
    """Registering is idempotent per id and owned by one service."""

    def test_first_registration_creates_then_refreshes(self, h: Harness) -> None:
        assert h.register("u1") is True
        h.clock.advance(3)
        assert h.register("u1") is False

        instance = h.store.get("u1")
        assert instance is not None
        assert instance.registered_at == EPOCH + timedelta(seconds=100)  # kept from the first registration
        assert instance.last_heartbeat_at == EPOCH + timedelta(seconds=103)
        assert h.kinds() == [ChangeKind.REGISTERED, ChangeKind.REREGISTERED]

    def test_default_ttl_applies_when_none_is_given(self) -> None:
        h = Harness(default_ttl=4.0)
        h.register("u1")
        h.register("u2", ttl=1.5)
        assert [i.ttl for i in h.store.lookup("users")[1]] == [4.0, 1.5]

    def test_another_service_cannot_take_an_id(self, h: Harness) -> None:
        h.register("u1", service="users")
        with pytest.raises(ServiceConflict, match=r"'users'.*'orders'"):
            h.register("u1", service="orders")

    def test_capacity_is_bounded_but_refreshes_still_work(self) -> None:
        h = Harness(max_instances=2)
        h.register("u1")
        h.register("u2")
        with pytest.raises(StoreFull):
            h.register("u3")
        assert h.register("u1") is False

    def test_deregister_removes_and_unknown_raises(self, h: Harness) -> None:
        h.register("u1")
        h.store.deregister("u1")
        assert h.store.get("u1") is None
        with pytest.raises(UnknownInstance):
            h.store.deregister("u1")
        assert h.kinds()[-1] is ChangeKind.DEREGISTERED


@pytest.mark.behaviour("registry.blocking_queries")
class TestIndexes:
    """Indexes move on membership, health and visible changes, never on plain heartbeats."""

    def test_new_instance_bumps_global_and_service_index(self, h: Harness) -> None:
        assert (h.store.index, h.store.service_index("users")) == (0, 0)
        h.register("u1")
        h.register("o1", service="orders")
        assert h.store.index == 2
        assert (h.store.service_index("users"), h.store.service_index("orders")) == (1, 2)

    def test_heartbeat_and_identical_refresh_do_not_bump(self, h: Harness) -> None:
        h.register("u1", metadata={"zone": "a"})
        before = h.store.service_index("users")
        h.store.heartbeat("u1")
        h.register("u1", metadata={"zone": "a"})
        h.register("u1", metadata={"zone": "a"}, ttl=99.0)  # the TTL is not shown in lookups
        assert h.store.service_index("users") == before

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param({"weight": 2}, id="weight"),
            pytest.param({"metadata": {"zone": "b"}}, id="metadata"),
            pytest.param({"port": 81}, id="port"),
            pytest.param({"health_url": "http://h/health"}, id="health-url"),
        ],
    )
    def test_visible_change_on_refresh_bumps(self, h: Harness, change: dict[str, Any]) -> None:
        h.register("u1", metadata={"zone": "a"})
        before = h.store.service_index("users")
        h.register("u1", **{"metadata": {"zone": "a"}, **change})
        assert h.store.service_index("users") > before

    def test_index_of_an_emptied_service_is_kept(self, h: Harness) -> None:
        h.register("u1")
        h.store.deregister("u1")
        index, instances = h.store.lookup("users")
        assert instances == []
        assert index == 2
        assert "users" not in h.store.services()

    def test_indexes_can_start_above_a_predecessors(self) -> None:
        store = InstanceStore(first_index=5_000)
        assert (store.index, store.service_index("users")) == (5_000, 0)
        store.register(Registration(instance_id="u1", service="users", address="h", port=1))
        assert (store.index, store.service_index("users")) == (5_001, 5_001)

    def test_changes_report_the_new_service_index(self, h: Harness) -> None:
        h.register("u1")
        h.register("u2")
        assert [c.index for c in h.changes] == [1, 2]


@pytest.mark.behaviour("registry.ttl_eviction")
class TestExpiry:
    """An instance lives for its TTL after its last heartbeat or registration."""

    def test_expires_exactly_at_ttl(self, h: Harness) -> None:
        h.register("u1", ttl=5.0)
        h.clock.advance(4.999)
        assert h.store.sweep() == pytest.approx(105.0)
        assert h.store.get("u1") is not None
        h.clock.advance(0.001)
        assert h.store.sweep() is None
        assert h.store.lookup("users", healthy_only=False)[1] == []
        assert h.kinds()[-1] is ChangeKind.EXPIRED
        assert "no heartbeat for 5s" in h.changes[-1].reason

    def test_heartbeat_pushes_expiry(self, h: Harness) -> None:
        h.register("u1", ttl=5.0)
        h.clock.advance(4)
        h.store.heartbeat("u1")
        h.clock.advance(4)
        h.store.sweep()
        instance = h.store.get("u1")
        assert instance is not None
        assert h.store.expires_in(instance) == pytest.approx(1.0)

    def test_overdue_instance_is_expired_on_touch_before_any_sweep(self, h: Harness) -> None:
        h.register("u1", ttl=5.0)
        h.clock.advance(5)
        with pytest.raises(UnknownInstance):
            h.store.heartbeat("u1")
        assert h.kinds() == [ChangeKind.REGISTERED, ChangeKind.EXPIRED]
        assert h.register("u1") is True  # registering again starts a new registration

    def test_sweep_reports_the_next_expiry(self, h: Harness) -> None:
        assert h.store.sweep() is None
        h.register("u1", ttl=5.0)
        h.register("u2", ttl=2.0)
        assert h.store.sweep() == pytest.approx(102.0)


@pytest.mark.behaviour("registry.health_check_eviction")
class TestHealth:
    """A failed check makes an instance critical at once; n in a row evict it; a pass restores it."""

    def test_failure_makes_critical_and_bumps_once(self, h: Harness) -> None:
        h.register_passing("u1")
        before = h.store.service_index("users")
        h.fail("u1")
        after_first = h.store.service_index("users")
        h.fail("u1")

        instance = h.store.get("u1")
        assert instance is not None
        assert (instance.status, instance.consecutive_failures) == (HealthStatus.CRITICAL, 2)
        assert after_first > before
        assert h.store.service_index("users") == after_first
        assert h.store.lookup("users")[1] == []
        assert [i.instance_id for i in h.store.lookup("users", healthy_only=False)[1]] == ["u1"]
        assert h.kinds().count(ChangeKind.HEALTH_CHANGED) == 2  # passed first, then failed

    def test_evicted_after_n_consecutive_failures(self) -> None:
        h = Harness(check_failures=3)
        h.register_passing("u1")
        h.fail("u1")
        h.fail("u1")
        assert h.store.get("u1") is not None
        h.fail("u1")
        assert h.store.get("u1") is None
        assert h.kinds()[-2:] == [ChangeKind.HEALTH_CHANGED, ChangeKind.EVICTED]
        assert "3 health checks failed in a row" in h.changes[-1].reason

    def test_single_allowed_failure_evicts_at_once(self) -> None:
        h = Harness(check_failures=1)
        h.register_passing("u1")
        h.fail("u1")
        assert h.kinds()[-1] is ChangeKind.EVICTED
        assert h.store.get("u1") is None

    def test_pass_restores_and_resets_failures(self, h: Harness) -> None:
        h.register_passing("u1")
        h.fail("u1")
        h.fail("u1")
        critical_index = h.store.service_index("users")
        h.pass_("u1")
        h.pass_("u1")

        instance = h.store.get("u1")
        assert instance is not None
        assert (instance.status, instance.consecutive_failures) == (HealthStatus.PASSING, 0)
        assert h.store.service_index("users") == critical_index + 1  # the second pass changes nothing
        h.fail("u1")
        h.fail("u1")
        assert h.store.get("u1") is not None  # the count started over

    def test_result_for_a_replaced_registration_is_ignored(self, h: Harness) -> None:
        h.register_passing("u1")
        stale = h.target("u1")
        h.register("u1", health_url=URL)
        assert h.store.record_check(stale, passed=False, reason="late") is None
        instance = h.store.get("u1")
        assert instance is not None
        assert instance.status is HealthStatus.PASSING

    def test_only_instances_with_a_health_url_are_checked(self, h: Harness) -> None:
        h.register("u1")
        h.register("u2", health_url=URL)
        assert [t.instance_id for t in h.store.check_targets()] == ["u2"]


@pytest.mark.behaviour("registry.critical_until_checked")
class TestFirstCheck:
    """An instance with a health URL is critical until a check passes, however it (re-)registered."""

    def test_new_instance_is_critical_until_its_first_check_passes(self, h: Harness) -> None:
        h.register("u1", health_url=URL)
        instance = h.store.get("u1")
        assert instance is not None
        assert (instance.status, instance.consecutive_failures) == (HealthStatus.CRITICAL, 0)
        assert h.store.lookup("users")[1] == []
        assert (h.store.services()["users"].instances, h.store.services()["users"].healthy) == (1, 0)
        index = h.store.service_index("users")

        h.pass_("u1")

        assert [i.instance_id for i in h.store.lookup("users")[1]] == ["u1"]
        assert h.store.service_index("users") > index  # watchers learn it became usable
        assert h.changes[-1].kind is ChangeKind.HEALTH_CHANGED
        assert "health check passed" in h.changes[-1].reason

    def test_instance_without_health_url_is_passing_at_once(self, h: Harness) -> None:
        h.register("u1")
        assert [i.instance_id for i in h.store.lookup("users")[1]] == ["u1"]
        assert h.store.check_targets(unchecked_only=True) == []

    def test_reregistration_after_eviction_waits_for_a_check(self) -> None:
        """The flap: an evicted instance's next heartbeat is 404, it registers again, and stays out."""
        h = Harness(check_failures=2)
        h.register_passing("u1")
        h.fail("u1")
        h.fail("u1")
        with pytest.raises(UnknownInstance):
            h.store.heartbeat("u1")

        assert h.register("u1", health_url=URL) is True

        assert h.store.lookup("users")[1] == []
        h.fail("u1")
        h.fail("u1")
        assert h.store.get("u1") is None  # a never-passing instance is evicted again, never listed
        assert ChangeKind.HEALTH_CHANGED not in h.kinds()[-3:]

    def test_refresh_keeps_health_and_failure_count(self) -> None:
        """Registering again while live cannot wash away failed checks (nor hide a passing instance)."""
        h = Harness(check_failures=3)
        h.register_passing("u1")
        h.register("u1", health_url=URL)
        assert [i.instance_id for i in h.store.lookup("users")[1]] == ["u1"]
        h.fail("u1")
        h.fail("u1")
        h.register("u1", health_url=URL)
        instance = h.store.get("u1")
        assert instance is not None
        assert (instance.status, instance.consecutive_failures) == (HealthStatus.CRITICAL, 2)
        h.fail("u1")
        assert h.store.get("u1") is None

    def test_new_health_url_starts_over_unchecked(self, h: Harness) -> None:
        h.register_passing("u1")
        h.register("u1", health_url="http://h:81/health")
        instance = h.store.get("u1")
        assert instance is not None
        assert (instance.status, instance.checked) == (HealthStatus.CRITICAL, False)
        assert [t.url for t in h.store.check_targets(unchecked_only=True)] == ["http://h:81/health"]

    def test_dropping_the_health_url_makes_it_passing(self, h: Harness) -> None:
        h.register("u1", health_url=URL)
        h.register("u1")
        assert [i.instance_id for i in h.store.lookup("users")[1]] == ["u1"]

    def test_unchecked_targets_are_those_awaiting_a_first_result(self, h: Harness) -> None:
        h.register_passing("u1")
        h.register("u2", health_url=URL)
        h.register("u3", health_url=URL)
        h.fail("u3")  # a failed first check is a result too: rounds take it from here
        assert [t.instance_id for t in h.store.check_targets(unchecked_only=True)] == ["u2"]

    async def test_registration_wakes_the_first_check_waiter(self, h: Harness) -> None:
        waiter = asyncio.create_task(h.store.wait_for_new_targets())
        await asyncio.sleep(0)
        h.register("u0")  # nothing to check
        await asyncio.sleep(0)
        assert not waiter.done()
        h.register("u1", health_url=URL)
        await asyncio.wait_for(waiter, timeout=1)
        second = asyncio.create_task(h.store.wait_for_new_targets())
        await asyncio.sleep(0)
        assert not second.done()  # the signal was consumed
        second.cancel()


@pytest.mark.behaviour("registry.healthy_lookups")
class TestReading:
    """Lookups are sorted by id; the services summary counts healthy instances."""

    def test_lookup_sorted_by_id(self, h: Harness) -> None:
        for instance_id in ("c", "a", "b"):
            h.register(instance_id)
        assert [i.instance_id for i in h.store.lookup("users")[1]] == ["a", "b", "c"]

    def test_services_summary(self, h: Harness) -> None:
        h.register_passing("u1")
        h.register("u2")
        h.register("o1", service="orders")
        h.fail("u1")
        summary = h.store.services()
        assert list(summary) == ["orders", "users"]
        assert (summary["users"].instances, summary["users"].healthy) == (2, 1)

    def test_unknown_service_has_index_zero(self, h: Harness) -> None:
        assert h.store.lookup("nobody") == (0, [])


@pytest.mark.behaviour("registry.blocking_queries")
class TestBlockingWait:
    """``wait_for_change`` returns on a change, at once for a stale index, and on close."""

    async def test_returns_at_once_when_index_differs(self, h: Harness) -> None:
        h.register("u1")
        await asyncio.wait_for(h.store.wait_for_change("users", 0), timeout=1)

    async def test_wakes_on_change(self, h: Harness) -> None:
        h.register("u1")
        waiter = asyncio.create_task(h.store.wait_for_change("users", 1))
        await asyncio.sleep(0)
        assert not waiter.done()
        h.register("u2")
        await asyncio.wait_for(waiter, timeout=1)

    async def test_other_services_do_not_wake_it(self, h: Harness) -> None:
        waiter = asyncio.create_task(h.store.wait_for_change("users", 0))
        await asyncio.sleep(0)
        h.register("o1", service="orders")
        await asyncio.sleep(0)
        assert not waiter.done()
        h.store.close()
        await asyncio.wait_for(waiter, timeout=1)

    async def test_cancelled_wait_leaves_the_next_one_working(self, h: Harness) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(h.store.wait_for_change("users", 0), timeout=0.01)
        waiter = asyncio.create_task(h.store.wait_for_change("users", 0))
        await asyncio.sleep(0)
        h.register("u1")
        await asyncio.wait_for(waiter, timeout=1)

    async def test_closed_store_does_not_block(self, h: Harness) -> None:
        h.store.close()
        await asyncio.wait_for(h.store.wait_for_change("users", 0), timeout=1)
