"""The order saga driver and its durable log, with in-memory participants (no sockets, no sleeps)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.events import EventLog
from reference_services.orchestrator._log import IdempotencyConflict, Order, SagaLog, SagaState
from reference_services.orchestrator._saga import Outcome, SagaDriver, StepResult


class Crash(BaseException):
    """Stands for the process dying in the middle of a call (before the call landed)."""


class Lost:
    """Stands for a call that landed but whose answer was lost (a timeout after the work was done)."""


Planned = Outcome | type[BaseException] | type[Lost]


class FakeParticipants:
    """Idempotent participants with the real services' rules and scripted outcomes; records every call.

    OK does the work (and answers by the rules: releasing a confirmed reservation or confirming a
    released one is refused, a released id refuses a late reserve), REJECTED and UNKNOWN do nothing,
    Lost does the work and answers UNKNOWN, Crash raises."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.script: dict[str, list[Planned]] = {}
        self.reservations: dict[str, str] = {}  # reservation id -> reserved | confirmed | released
        self.notified: set[str] = set()

    def _next(self, step: str) -> Planned:
        self.calls[step] += 1
        planned = self.script.get(step)
        outcome = planned.pop(0) if planned else Outcome.OK
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            raise outcome()
        return outcome

    def _run(self, step: str, work: Callable[[], bool]) -> StepResult:
        """``work`` applies the call's effect and says whether the rules allowed it."""
        planned = self._next(step)
        if planned is Outcome.OK or planned is Lost:
            allowed = work()
            if planned is Lost:
                return StepResult(Outcome.UNKNOWN, "lost answer")
            return StepResult(Outcome.OK if allowed else Outcome.REJECTED, "", 200 if allowed else 409)
        assert isinstance(planned, Outcome)
        return StepResult(planned, "")

    def _set(self, reservation_id: str, status: str, refused_from: str) -> bool:
        if self.reservations.get(reservation_id) == refused_from:
            return False
        self.reservations[reservation_id] = status
        return True

    async def reserve_credit(self, order: Order) -> StepResult:
        def work() -> bool:
            if self.reservations.get(order.reservation_id) == "released":
                return False
            self.reservations.setdefault(order.reservation_id, "reserved")
            return True

        return self._run("reserve_credit", work)

    async def release_credit(self, order: Order) -> StepResult:
        return self._run("release_credit", lambda: self._set(order.reservation_id, "released", "confirmed"))

    async def confirm_credit(self, order: Order) -> StepResult:
        return self._run("confirm_credit", lambda: self._set(order.reservation_id, "confirmed", "released"))

    async def notify(self, order: Order) -> StepResult:
        def work() -> bool:
            self.notified.add(order.notification_id)
            return True

        return self._run("notify", work)


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SagaLog]:
    saga_log = await SagaLog(tmp_path / "orders.sqlite3").open()
    yield saga_log
    await saga_log.close()


@pytest.fixture
def participants() -> FakeParticipants:
    return FakeParticipants()


@pytest.fixture
def driver(log: SagaLog, participants: FakeParticipants) -> SagaDriver:
    return SagaDriver(log, participants, EventLog("test"))


async def new_order(log: SagaLog, key: str = "k1", amount: int = 10) -> Order:
    order, created = await log.create_order(key, "alice", amount)
    assert created
    return order


async def steps(log: SagaLog, order: Order) -> list[tuple[str, str]]:
    return [(s.step, s.status) for s in await log.steps(order.order_id)]


async def history(log: SagaLog, order: Order, step: str) -> list[str]:
    return [status for name, status in await steps(log, order) if name == step]


@pytest.mark.behaviour("saga.pivot_rule")
class TestForward:
    @pytest.mark.behaviour("saga.completes")
    async def test_happy_path_runs_the_pivot_before_telling_the_customer(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """reserve -> record -> confirm (the pivot) -> notify, each logged started before succeeded."""
        order = await new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.COMPLETED
        assert await steps(log, order) == [
            ("saga", "created"),
            ("reserve_credit", "started"), ("reserve_credit", "succeeded"),
            ("record_order", "started"), ("record_order", "succeeded"),
            ("confirm_credit", "started"), ("confirm_credit", "succeeded"),
            ("notify", "started"), ("notify", "succeeded"),
        ]  # fmt: skip
        assert participants.reservations == {order.reservation_id: "confirmed"}
        assert participants.notified == {order.notification_id}

    async def test_a_notify_without_answer_is_retried_and_never_compensated(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """After the pivot a notify that may have landed waits for the next drive; nothing is undone."""
        participants.script["notify"] = [Outcome.UNKNOWN, Outcome.UNKNOWN]
        order = await new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.NOTIFYING
        assert (await driver.drive(order.order_id)).state is SagaState.NOTIFYING
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert participants.calls["release_credit"] == 0
        assert participants.reservations == {order.reservation_id: "confirmed"}

    async def test_a_confirm_without_answer_waits_and_never_releases(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """The pivot may have happened: retry it, never compensate, and notify only once it is confirmed."""
        participants.script["confirm_credit"] = [Outcome.UNKNOWN]
        order = await new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.CONFIRMING_CREDIT
        assert participants.notified == set()
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert participants.calls["release_credit"] == 0

    @pytest.mark.behaviour("saga.compensation")
    async def test_a_confirm_refused_compensates_without_telling_anyone(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A clear no at the pivot means it did not happen: cancel, release, and nobody is notified."""
        participants.script["confirm_credit"] = [Outcome.REJECTED]
        order = await new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.COMPENSATED
        assert done.reason is not None
        assert done.reason.startswith("confirm_credit rejected")
        assert await history(log, order, "cancel_order") == ["started", "succeeded"]
        assert participants.reservations == {order.reservation_id: "released"}
        assert participants.notified == set()


@pytest.mark.behaviour("saga.bounded_retries")
class TestBoundedRetries:
    @pytest.mark.parametrize(
        ("step", "stalled_in"),
        [pytest.param("confirm_credit", SagaState.CONFIRMING_CREDIT, id="pivot"),
         pytest.param("notify", SagaState.NOTIFYING, id="after-pivot")],
    )  # fmt: skip
    async def test_no_answer_within_the_bound_needs_attention(
        self, log: SagaLog, participants: FakeParticipants, step: str, stalled_in: SagaState
    ) -> None:
        """max_attempts starts without a clear answer: NEEDS_ATTENTION, where it stalled, never undone."""
        driver = SagaDriver(log, participants, EventLog("test"), max_attempts=3)
        participants.script[step] = [Outcome.UNKNOWN] * 10
        order = await new_order(log)
        states = [(await driver.drive(order.order_id)).state for _ in range(4)]
        assert states == [stalled_in, stalled_in, SagaState.NEEDS_ATTENTION, SagaState.NEEDS_ATTENTION]
        stalled = await log.get(order.order_id)
        assert stalled is not None
        assert stalled.stalled_in is stalled_in
        assert stalled.reason is not None
        assert "no clear answer in 3 attempts" in stalled.reason
        assert participants.calls[step] == 3
        assert participants.calls["release_credit"] == 0
        assert await log.unfinished() == []
        assert [e["order_id"] for e in driver.events.of_type("saga.needs_attention")] == [order.order_id]

    async def test_a_notify_refused_needs_attention_at_once(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A clear no after the pivot cannot be retried away and cannot be compensated: stop, visibly."""
        participants.script["notify"] = [Outcome.REJECTED]
        order = await new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.NEEDS_ATTENTION
        assert done.stalled_in is SagaState.NOTIFYING
        assert participants.calls["notify"] == 1
        assert participants.reservations == {order.reservation_id: "confirmed"}

    async def test_a_resumed_saga_gets_fresh_attempts_and_finishes(
        self, log: SagaLog, participants: FakeParticipants
    ) -> None:
        """An operator resumes a stalled saga: it starts again where it stalled and completes."""
        driver = SagaDriver(log, participants, EventLog("test"), max_attempts=2)
        participants.script["notify"] = [Outcome.UNKNOWN] * 2
        order = await new_order(log)
        await driver.drive(order.order_id)
        assert (await driver.drive(order.order_id)).state is SagaState.NEEDS_ATTENTION
        resumed = await log.resume(order.order_id)
        assert resumed is not None
        assert resumed.state is SagaState.NOTIFYING
        assert await log.attempts(order.order_id, "notify") == 0
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert await log.resume(order.order_id) == await log.get(
            order.order_id
        )  # resuming a finished saga: no-op


@pytest.mark.behaviour("saga.compensation")
class TestCompensation:
    @pytest.mark.parametrize("outcome", [pytest.param(Outcome.REJECTED, id="rejected"),
                                         pytest.param(Outcome.UNKNOWN, id="unknown")])  # fmt: skip
    async def test_failed_reserve_releases_and_compensates(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants, outcome: Outcome
    ) -> None:
        """No clear yes from users: release (it may have landed) and end COMPENSATED, nobody notified."""
        participants.script["reserve_credit"] = [outcome]
        order = await new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.COMPENSATED
        assert done.reason is not None
        assert done.reason.startswith(f"reserve_credit {outcome.value}")
        assert participants.calls["release_credit"] == 1
        assert participants.notified == set()
        assert await history(log, order, "cancel_order") == []

    async def test_failed_release_keeps_compensating_until_it_succeeds(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A compensation that fails is retried on the next drive; cancel_order is not repeated."""
        participants.script["confirm_credit"] = [Outcome.REJECTED]
        participants.script["release_credit"] = [Outcome.UNKNOWN]
        order = await new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.COMPENSATING
        assert (await driver.drive(order.order_id)).state is SagaState.COMPENSATED
        assert await history(log, order, "cancel_order") == ["started", "succeeded"]

    async def test_a_release_refused_needs_attention(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A compensation the participant refuses cannot finish by retrying: NEEDS_ATTENTION."""
        participants.script["reserve_credit"] = [Outcome.UNKNOWN]
        participants.script["release_credit"] = [Outcome.REJECTED]
        order = await new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.NEEDS_ATTENTION
        assert done.stalled_in is SagaState.COMPENSATING


Script = list[Planned]
OUTCOMES = st.sampled_from([Outcome.OK, Outcome.OK, Outcome.REJECTED, Outcome.UNKNOWN, Lost, Crash])


@pytest.mark.behaviour("saga.pivot_rule")
class TestPivotProperty:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        script=st.fixed_dictionaries(
            {step: st.lists(OUTCOMES, max_size=4)
             for step in ("reserve_credit", "confirm_credit", "notify", "release_credit")}
        )
    )  # fmt: skip
    def test_no_compensated_order_was_ever_notified(self, script: dict[str, Script]) -> None:
        """Whatever each call answers, and wherever the process dies: a saga ends COMPLETED (confirmed
        and notified), COMPENSATED (released, never notified) or NEEDS_ATTENTION (never undone after the
        pivot), and once final it stays so."""
        participants = FakeParticipants()
        participants.script = {step: list(outcomes) for step, outcomes in script.items()}
        with tempfile.TemporaryDirectory() as folder:
            final = asyncio.run(drive_until_final(Path(folder) / "orders.sqlite3", participants))
        reservation = participants.reservations.get(final.reservation_id)
        if participants.notified:
            assert reservation == "confirmed"  # nobody is told about an order that may still be undone
        if final.state is SagaState.COMPLETED:
            assert reservation == "confirmed"
            assert participants.notified == {final.notification_id}
        elif final.state is SagaState.COMPENSATED:
            assert participants.notified == set()
            assert reservation in (None, "released")
        else:
            assert final.state is SagaState.NEEDS_ATTENTION
            if final.stalled_in in (SagaState.CONFIRMING_CREDIT, SagaState.NOTIFYING):
                assert reservation != "released"  # past the pivot nothing is undone


async def drive_until_final(path: Path, participants: FakeParticipants) -> Order:
    """Drive like the recovery loop does, a new driver after every crash, until the saga is final."""
    log = await SagaLog(path).open()
    try:
        order = await new_order(log)
        for _ in range(50):
            try:
                current = await SagaDriver(log, participants, EventLog("test"), max_attempts=3).drive(
                    order.order_id
                )
            except Crash:
                continue
            if current.state.final:
                again = await SagaDriver(log, participants, EventLog("test")).drive(order.order_id)
                assert again == current
                return current
        raise AssertionError("the saga did not become final in 50 drives")
    finally:
        await log.close()


@pytest.mark.behaviour("saga.crash_recovery")
class TestCrashRecovery:
    @pytest.mark.parametrize("step", ["reserve_credit", "confirm_credit", "notify", "release_credit"])
    async def test_a_crash_mid_call_is_resumed_from_the_log(
        self, tmp_path: Path, participants: FakeParticipants, step: str
    ) -> None:
        """Kill the driver inside any call; a new driver on the same file finishes the saga."""
        if step == "release_credit":
            participants.script["confirm_credit"] = [Outcome.REJECTED]
        participants.script[step] = [*participants.script.get(step, []), Crash]
        first = await SagaLog(tmp_path / "orders.sqlite3").open()
        order = await new_order(first)
        with pytest.raises(Crash):
            await SagaDriver(first, participants, EventLog("test")).drive(order.order_id)
        await first.close()

        reopened = await SagaLog(tmp_path / "orders.sqlite3").open()
        assert await reopened.unfinished() == [order.order_id]
        done = await SagaDriver(reopened, participants, EventLog("test")).drive(order.order_id)
        await reopened.close()
        expected = SagaState.COMPENSATED if step == "release_credit" else SagaState.COMPLETED
        assert done.state is expected
        assert participants.calls[step] == 2  # the call whose outcome was lost ran again


@pytest.mark.behaviour("saga.crash_recovery")
class TestLegacyLog:
    async def test_a_saga_left_notifying_by_the_old_order_goes_forward_from_the_pivot(
        self, tmp_path: Path
    ) -> None:
        """Version 0 notified before confirming: its NOTIFYING sagas resume at CONFIRMING_CREDIT."""
        path = tmp_path / "orders.sqlite3"
        with sqlite3.connect(path) as db:
            db.executescript(LEGACY_SCHEMA)
            db.execute("INSERT INTO orders VALUES ('o1', 'k1', 'alice', 10, 'NOTIFYING', NULL, 't', 't')")
        log = await SagaLog(path).open()
        try:
            order = await log.get("o1")
            assert order is not None
            assert (order.state, order.stalled_in) == (SagaState.CONFIRMING_CREDIT, None)
            assert await log.unfinished() == ["o1"]
        finally:
            await log.close()


LEGACY_SCHEMA = """
CREATE TABLE orders (order_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
    amount INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE saga_log (order_id TEXT NOT NULL REFERENCES orders(order_id), seq INTEGER NOT NULL,
    step TEXT NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (order_id, seq));
"""


@pytest.mark.behaviour("saga.idempotent_orders")
class TestIdempotentOrders:
    async def test_same_key_same_order(self, log: SagaLog) -> None:
        """A replayed key returns the first order and creates nothing."""
        first = await new_order(log, "k1", 10)
        again, created = await log.create_order("k1", "alice", 10)
        assert (again.order_id, created) == (first.order_id, False)
        assert len(await log.orders()) == 1

    async def test_same_key_different_order_conflicts(self, log: SagaLog) -> None:
        """A key reused for another amount is refused, naming the first order."""
        first = await new_order(log, "k1", 10)
        with pytest.raises(IdempotencyConflict, match=first.order_id):
            await log.create_order("k1", "alice", 11)
