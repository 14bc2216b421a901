"""The order saga driver and its durable log, with in-memory participants (no sockets, no sleeps)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.events import EventLog
from harness.resilience import RetryPolicy
from reference_services.orchestrator._log import IdempotencyConflict, Order, SagaLog, SagaState
from reference_services.orchestrator._saga import DEFAULT_STEP_DEADLINE, Outcome, SagaDriver, StepResult

DEADLINE = DEFAULT_STEP_DEADLINE


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


class Clock:
    """UTC now plus an offset the test moves on (the saga log stamps its rows with the real time)."""

    def __init__(self, ahead: float = 0.0) -> None:
        self.ahead = ahead

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.ahead)

    async def sleep(self, seconds: float) -> None:
        self.ahead += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def driver(log: SagaLog, participants: FakeParticipants, clock: Clock) -> SagaDriver:
    return SagaDriver(log, participants, EventLog("test"), clock=clock, sleep=clock.sleep)


@pytest.fixture
def late(log: SagaLog, participants: FakeParticipants) -> SagaDriver:
    """A driver whose clock is a whole step deadline ahead: any failure to deliver is past its deadline."""
    return SagaDriver(log, participants, EventLog("test"), clock=Clock(ahead=DEADLINE))


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

    @pytest.mark.parametrize("driver_name", ["driver", "late"])
    async def test_a_notify_without_answer_is_retried_and_never_compensated(
        self, log: SagaLog, participants: FakeParticipants, driver_name: str, request: pytest.FixtureRequest
    ) -> None:
        """After the pivot a notify that may have landed waits for the next drive, within its deadline and
        past it; nothing is undone."""
        driver: SagaDriver = request.getfixturevalue(driver_name)
        participants.script["notify"] = [Outcome.UNKNOWN, Outcome.UNKNOWN]
        order = await new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.NOTIFYING
        assert (await driver.drive(order.order_id)).state is SagaState.NOTIFYING
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert participants.calls["release_credit"] == 0
        assert participants.reservations == {order.reservation_id: "confirmed"}

    @pytest.mark.parametrize("driver_name", ["driver", "late"])
    async def test_a_confirm_without_answer_waits_and_never_releases(
        self, log: SagaLog, participants: FakeParticipants, driver_name: str, request: pytest.FixtureRequest
    ) -> None:
        """The pivot may have happened: retry it, never compensate (not even past its deadline), and
        notify only once it is confirmed."""
        driver: SagaDriver = request.getfixturevalue(driver_name)
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
class TestStepDeadlines:
    """A failure to deliver is retried by deadline, not by count; only a refusal stops a saga."""

    @pytest.mark.parametrize(
        ("step", "waits_in"),
        [pytest.param("confirm_credit", SagaState.CONFIRMING_CREDIT, id="pivot"),
         pytest.param("notify", SagaState.NOTIFYING, id="after-pivot")],
    )  # fmt: skip
    async def test_no_answer_past_the_deadline_is_retried_until_done_and_logged_overdue(
        self,
        log: SagaLog,
        driver: SagaDriver,
        participants: FakeParticipants,
        clock: Clock,
        step: str,
        waits_in: SagaState,
    ) -> None:
        """Ten unknown outcomes over 100 s (deadline 30 s): still waiting where it was, one ``overdue``
        row, never NEEDS_ATTENTION, never undone; the eleventh call completes the saga."""
        participants.script[step] = [Outcome.UNKNOWN] * 10
        order = await new_order(log)
        states = []
        for _ in range(10):
            states.append((await driver.drive(order.order_id)).state)
            clock.ahead += 10.0
        assert states == [waits_in] * 10
        tried = ["started", "failed"]
        assert await history(log, order, step) == tried * 3 + [*tried, "overdue"] + tried * 6
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert participants.calls[step] == 11
        assert participants.calls["release_credit"] == 0
        assert driver.events.of_type("saga.needs_attention") == []
        overdue = [e for e in driver.events.of_type("saga.step") if e["status"] == "overdue"]
        assert [(e["step"], e["state"]) for e in overdue] == [(step, waits_in.value)]
        assert "still retrying" in overdue[0]["detail"]

    async def test_a_reserve_without_answer_is_retried_within_its_deadline(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants, clock: Clock
    ) -> None:
        """Before the pivot a failure to deliver is not undone at once: retried while the deadline lasts."""
        participants.script["reserve_credit"] = [Outcome.UNKNOWN, Outcome.UNKNOWN]
        order = await new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.RESERVING_CREDIT
        clock.ahead += DEADLINE - 1.0
        assert (await driver.drive(order.order_id)).state is SagaState.RESERVING_CREDIT
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert participants.calls["release_credit"] == 0
        assert participants.reservations == {order.reservation_id: "confirmed"}

    async def test_a_reserve_without_answer_past_its_deadline_compensates(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants, clock: Clock
    ) -> None:
        """The deadline counts from the first start, across drives: past it, release and end COMPENSATED."""
        participants.script["reserve_credit"] = [Outcome.UNKNOWN, Lost]
        order = await new_order(log)
        assert (await driver.drive(order.order_id)).state is SagaState.RESERVING_CREDIT
        clock.ahead += DEADLINE
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.COMPENSATED
        assert done.reason is not None
        assert done.reason.startswith("reserve_credit unknown")
        assert f"within the step deadline of {DEADLINE:g}s" in done.reason
        assert participants.reservations == {order.reservation_id: "released"}  # the lost one undone
        assert participants.notified == set()

    async def test_a_release_without_answer_is_retried_until_done(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants, clock: Clock
    ) -> None:
        """A compensation may not be given up either: past its deadline it is overdue, then done."""
        participants.script["confirm_credit"] = [Outcome.REJECTED]
        participants.script["release_credit"] = [Outcome.UNKNOWN] * 3
        order = await new_order(log)
        for _ in range(3):
            assert (await driver.drive(order.order_id)).state is SagaState.COMPENSATING
            clock.ahead += DEADLINE
        assert (await driver.drive(order.order_id)).state is SagaState.COMPENSATED
        assert (await history(log, order, "release_credit")).count("overdue") == 1

    async def test_a_notify_refused_needs_attention_at_once(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A clear no after the pivot cannot be retried away and cannot be compensated: stop, visibly."""
        participants.script["notify"] = [Outcome.REJECTED]
        order = await new_order(log)
        done = await driver.drive(order.order_id)
        assert done.state is SagaState.NEEDS_ATTENTION
        assert done.stalled_in is SagaState.NOTIFYING
        assert done.reason is not None
        assert "a clear no" in done.reason
        assert participants.calls["notify"] == 1
        assert participants.reservations == {order.reservation_id: "confirmed"}
        assert await log.unfinished() == []
        assert [e["order_id"] for e in driver.events.of_type("saga.needs_attention")] == [order.order_id]

    async def test_a_resumed_saga_gets_a_fresh_deadline_and_finishes(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants, clock: Clock
    ) -> None:
        """An operator resumes a stalled saga: it starts again where it stalled and completes."""
        participants.script["notify"] = [Outcome.UNKNOWN, Outcome.REJECTED]
        order = await new_order(log)
        await driver.drive(order.order_id)
        clock.ahead += DEADLINE
        assert (await driver.drive(order.order_id)).state is SagaState.NEEDS_ATTENTION
        resumed = await log.resume(order.order_id)
        assert resumed is not None
        assert resumed.state is SagaState.NOTIFYING
        tries = await log.tries(order.order_id, "notify")
        assert (tries.attempts, tries.first_started, tries.overdue) == (0, None, False)
        assert (await driver.drive(order.order_id)).state is SagaState.COMPLETED
        assert await log.resume(order.order_id) == await log.get(
            order.order_id
        )  # resuming a finished saga: no-op

    def test_a_deadline_must_be_positive(self, log: SagaLog, participants: FakeParticipants) -> None:
        with pytest.raises(ValueError, match="step_deadline must be a positive number of seconds"):
            SagaDriver(log, participants, EventLog("test"), step_deadline=0)


@pytest.mark.behaviour("saga.bounded_retries", "saga.pivot_rule")
class TestRun:
    async def test_run_backs_off_between_passes_until_the_saga_is_final(
        self, log: SagaLog, participants: FakeParticipants
    ) -> None:
        """Six unknown notifies: six rests, each a full-jitter draw under a doubling cap, then COMPLETED."""
        clock = Clock()
        rests: list[float] = []

        async def rest(seconds: float) -> None:
            rests.append(seconds)
            await clock.sleep(seconds)

        backoff = RetryPolicy(base_delay=0.5, max_delay=4.0)
        driver = SagaDriver(log, participants, EventLog("test"), backoff=backoff, clock=clock, sleep=rest,
                            rng=random.Random(3))  # fmt: skip
        participants.script["notify"] = [Outcome.UNKNOWN] * 6
        order = await new_order(log)
        done = await driver.run(order.order_id)
        assert done.state is SagaState.COMPLETED
        assert len(rests) == 6
        caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        assert all(0.0 <= wait <= cap for wait, cap in zip(rests, caps, strict=True))
        assert participants.calls["notify"] == 7

    async def test_run_returns_at_once_on_a_refusal(
        self, log: SagaLog, driver: SagaDriver, participants: FakeParticipants
    ) -> None:
        participants.script["notify"] = [Outcome.REJECTED]
        order = await new_order(log)
        assert (await driver.run(order.order_id)).state is SagaState.NEEDS_ATTENTION


@pytest.mark.behaviour("saga.compensation")
class TestCompensation:
    @pytest.mark.parametrize("outcome", [pytest.param(Outcome.REJECTED, id="rejected"),
                                         pytest.param(Outcome.UNKNOWN, id="unknown")])  # fmt: skip
    async def test_failed_reserve_releases_and_compensates(
        self, log: SagaLog, late: SagaDriver, participants: FakeParticipants, outcome: Outcome
    ) -> None:
        """No clear yes from users (a refusal, or no answer past the deadline): release (it may have
        landed) and end COMPENSATED, nobody notified."""
        participants.script["reserve_credit"] = [outcome]
        order = await new_order(log)
        done = await late.drive(order.order_id)
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
        self, log: SagaLog, late: SagaDriver, participants: FakeParticipants
    ) -> None:
        """A compensation the participant refuses cannot finish by retrying: NEEDS_ATTENTION."""
        participants.script["reserve_credit"] = [Outcome.UNKNOWN]
        participants.script["release_credit"] = [Outcome.REJECTED]
        order = await new_order(log)
        done = await late.drive(order.order_id)
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
        and notified), COMPENSATED (released, never notified) or NEEDS_ATTENTION (only on a refusal,
        never undone after the pivot), and once final it stays so."""
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
            assert final.reason is not None
            assert "a clear no" in final.reason  # a failure to deliver never stops a saga
            if final.stalled_in in (SagaState.CONFIRMING_CREDIT, SagaState.NOTIFYING):
                assert reservation != "released"  # past the pivot nothing is undone


async def drive_until_final(path: Path, participants: FakeParticipants) -> Order:
    """Drive like the recovery loop does, a new driver after every crash, 20 s apart (two unknown answers
    before the pivot pass its deadline), until the saga is final."""
    log = await SagaLog(path).open()
    clock = Clock()
    try:
        order = await new_order(log)
        for _ in range(50):
            clock.ahead += 20.0
            try:
                current = await SagaDriver(log, participants, EventLog("test"), clock=clock).drive(
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
