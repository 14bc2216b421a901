"""The order saga driver and its durable log, with in-memory participants (no sockets, no sleeps)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.events import EventLog
from reference_services.orchestrator._log import IdempotencyConflict, Order, SagaLog, SagaState
from reference_services.orchestrator._saga import Outcome, SagaDriver, StepResult


class Crash(BaseException):
    """Stands for the process dying in the middle of a call."""


class FakeParticipants:
    """Idempotent participants with scripted outcomes; records every call."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.script: dict[str, list[Outcome | type[BaseException]]] = {}
        self.reservations: dict[str, str] = {}  # reservation id -> reserved | confirmed | released
        self.notified: set[str] = set()

    def _next(self, step: str) -> Outcome:
        self.calls[step] += 1
        planned = self.script.get(step)
        if planned:
            outcome = planned.pop(0)
            if isinstance(outcome, type):
                raise outcome()
            return outcome
        return Outcome.OK

    async def reserve_credit(self, order: Order) -> StepResult:
        outcome = self._next("reserve_credit")
        if outcome is Outcome.OK:
            self.reservations.setdefault(order.reservation_id, "reserved")
        return StepResult(outcome, "")

    async def release_credit(self, order: Order) -> StepResult:
        outcome = self._next("release_credit")
        if outcome is Outcome.OK:
            self.reservations[order.reservation_id] = "released"
        return StepResult(outcome, "")

    async def confirm_credit(self, order: Order) -> StepResult:
        outcome = self._next("confirm_credit")
        if outcome is Outcome.OK:
            self.reservations[order.reservation_id] = "confirmed"
        return StepResult(outcome, "")

    async def notify(self, order: Order) -> StepResult:
        outcome = self._next("notify")
        if outcome is Outcome.OK:
            self.notified.add(order.notification_id)
        return StepResult(outcome, "")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SagaLog]:
    saga_log = SagaLog(tmp_path / "orders.sqlite3")
    yield saga_log
    saga_log.close()


@pytest.fixture
def participants() -> FakeParticipants:
    return FakeParticipants()


@pytest.fixture
def driver(log: SagaLog, participants: FakeParticipants) -> SagaDriver:
    return SagaDriver(log, participants, EventLog("test"))


def new_order(log: SagaLog, key: str = "k1", amount: int = 10) -> Order:
    order, created = log.create_order(key, "alice", amount)
    assert created
    return order


def steps(log: SagaLog, order: Order) -> list[tuple[str, str]]:
    return [(s.step, s.status) for s in log.steps(order.order_id)]


class TestForward:
    async def test_happy_path_completes_in_order(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """reserve -> record -> notify -> confirm, each logged started before succeeded."""
        order = new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.COMPLETED
        assert steps(log, order) == [
            ("saga", "created"),
            ("reserve_credit", "started"), ("reserve_credit", "succeeded"),
            ("record_order", "started"), ("record_order", "succeeded"),
            ("notify", "started"), ("notify", "succeeded"),
            ("confirm_credit", "started"), ("confirm_credit", "succeeded"),
        ]  # fmt: skip
        assert participants.reservations == {order.reservation_id: "confirmed"}
        assert participants.notified == {order.notification_id}

    async def test_failed_confirm_waits_and_never_compensates(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """Past the pivot (notify) a failing confirm leaves the saga waiting; the next drive completes it."""
        participants.script["confirm_credit"] = [Outcome.UNKNOWN, Outcome.REJECTED]
        order = new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.CONFIRMING_CREDIT
        assert (await driver.drive(order.order_id)).state is SagaState.CONFIRMING_CREDIT
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert participants.calls["release_credit"] == 0


class TestCompensation:
    @pytest.mark.parametrize("outcome", [pytest.param(Outcome.REJECTED, id="rejected"),
                                         pytest.param(Outcome.UNKNOWN, id="unknown")])  # fmt: skip
    async def test_failed_reserve_releases_and_compensates(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants, outcome: Outcome
    ) -> None:
        """No clear yes from users: release (it may have landed) and end COMPENSATED, nobody notified."""
        participants.script["reserve_credit"] = [outcome]
        order = new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.COMPENSATED
        assert done.reason is not None
        assert done.reason.startswith(f"reserve_credit {outcome.value}")
        assert participants.calls["release_credit"] == 1
        assert participants.notified == set()
        assert ("cancel_order", "succeeded") not in steps(log, order)

    async def test_failed_notify_cancels_the_order_and_releases_credit(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A participant failing after reserve and record leads to full compensation."""
        participants.script["notify"] = [Outcome.UNKNOWN]
        order = new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.COMPENSATED
        assert ("cancel_order", "succeeded") in steps(log, order)
        assert participants.reservations == {order.reservation_id: "released"}

    async def test_failed_release_keeps_compensating_until_it_succeeds(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A compensation that fails is retried on the next drive; cancel_order is not repeated."""
        participants.script["notify"] = [Outcome.REJECTED]
        participants.script["release_credit"] = [Outcome.UNKNOWN]
        order = new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.COMPENSATING
        assert (await driver.drive(order.order_id)).state is SagaState.COMPENSATED
        assert [s for s in steps(log, order) if s[0] == "cancel_order"] == [
            ("cancel_order", "started"), ("cancel_order", "succeeded")]  # fmt: skip


class TestCrashRecovery:
    @pytest.mark.parametrize("step", ["reserve_credit", "notify", "confirm_credit", "release_credit"])
    async def test_a_crash_mid_call_is_resumed_from_the_log(
        self, tmp_path: Path, participants: FakeParticipants, step: str
    ) -> None:
        """Kill the driver inside any call; a new driver on the same file finishes the saga."""
        if step == "release_credit":
            participants.script["notify"] = [Outcome.REJECTED]
        participants.script[step] = [*participants.script.get(step, []), Crash]
        first = SagaLog(tmp_path / "orders.sqlite3")
        order = new_order(first)
        with pytest.raises(Crash):
            await SagaDriver(first, participants, EventLog("test")).drive(order.order_id)
        first.close()

        reopened = SagaLog(tmp_path / "orders.sqlite3")
        assert reopened.unfinished() == [order.order_id]
        done = await SagaDriver(reopened, participants, EventLog("test")).drive(order.order_id)
        reopened.close()
        expected = SagaState.COMPENSATED if step == "release_credit" else SagaState.COMPLETED
        assert done.state is expected
        assert participants.calls[step] == 2  # the call whose outcome was lost ran again


class TestIdempotentOrders:
    def test_same_key_same_order(self, log: SagaLog) -> None:
        """A replayed key returns the first order and creates nothing."""
        first = new_order(log, "k1", 10)
        again, created = log.create_order("k1", "alice", 10)
        assert (again.order_id, created) == (first.order_id, False)
        assert len(log.orders()) == 1

    def test_same_key_different_order_conflicts(self, log: SagaLog) -> None:
        """A key reused for another amount is refused, naming the first order."""
        first = new_order(log, "k1", 10)
        with pytest.raises(IdempotencyConflict, match=first.order_id):
            log.create_order("k1", "alice", 11)
