"""The order saga driver: runs the steps of ``_steps.FORWARD`` and, when it must, their compensations.

Semantics (the pivot rule): before the pivot, a step that meets a clear "no", or has no clear success
within its deadline, compensates every step that was started (it may have landed), newest first. At the
pivot, a clear "no" compensates the same way, but no clear answer is retried until done, because the
pivot may have happened. After the pivot the saga only moves forward: notify and the compensations are
retried until done, and past their deadline only logged ``overdue``. A failure to deliver (no clear
answer: see ``_participants``) is retried with backoff; every retried call is idempotent (keys derived
from the saga id). Only a clear "no" where no compensation is allowed leaves the saga visibly
NEEDS_ATTENTION: retrying cannot change a refusal.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from harness.events import EventLog
from harness.resilience import RetryPolicy

from ._log import Order, SagaLog
from ._steps import (
    FORWARD,
    LOCAL_COMPENSATIONS,
    SAGA,
    SagaState,
    Step,
    StepKind,
    StepSpec,
    StepStatus,
    next_spec,
    spec_during,
)

DEFAULT_STEP_DEADLINE = 30.0
"""Seconds a step may go without a clear answer (from its first start): then a step before the pivot
compensates, and one at or after it is logged overdue and retried on."""
PASS_BACKOFF = RetryPolicy(base_delay=0.2, max_delay=5.0)
"""How long a saga that had to wait rests before its next pass (full jitter, doubling, capped)."""

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"  # a refusal the participant's contract defines: the call did not happen
    UNKNOWN = "unknown"  # a failure to deliver (reset, cut answer, 5xx, ...): it may or may not have happened


@dataclass(frozen=True)
class StepResult:
    outcome: Outcome
    detail: str
    status: int | None = None  # the HTTP status, when there was an answer


OK = StepResult(Outcome.OK, "")


class Participants(Protocol):
    """The remote side of each step; every method must be idempotent for the same order."""

    async def reserve_credit(self, order: Order) -> StepResult: ...
    async def release_credit(self, order: Order) -> StepResult: ...
    async def confirm_credit(self, order: Order) -> StepResult: ...
    async def notify(self, order: Order) -> StepResult: ...


Call = Callable[[Order], Awaitable[StepResult]]


class SagaDriver:
    """Moves one saga as far as it can go now (``drive``), or until it is final (``run``)."""

    def __init__(
        self,
        log: SagaLog,
        participants: Participants,
        events: EventLog,
        *,
        step_deadline: float = DEFAULT_STEP_DEADLINE,
        backoff: RetryPolicy = PASS_BACKOFF,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not step_deadline > 0:
            raise ValueError(f"step_deadline must be a positive number of seconds, got {step_deadline}")
        self.log = log
        self.events = events
        self.step_deadline = step_deadline
        self.backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._calls: dict[Step, Call] = {
            Step.RESERVE_CREDIT: participants.reserve_credit,
            Step.CONFIRM_CREDIT: participants.confirm_credit,
            Step.NOTIFY: participants.notify,
            Step.RELEASE_CREDIT: participants.release_credit,
        }

    async def run(self, order_id: str) -> Order:
        """Drive the saga until it is final, resting a backoff between passes that had to wait.

        After the pivot that can be forever (until the participant answers); cancel the task to stop."""
        passes = 0
        while True:
            order = await self.drive(order_id)
            if order.state.final:
                return order
            passes += 1
            await self._sleep(self.backoff.backoff(passes, self._rng))

    async def drive(self, order_id: str) -> Order:
        """Run steps until the saga is final or a step must be retried later; returns the order then."""
        order = await self._get(order_id)
        while not order.state.final:
            advanced = await self._step(order)
            if advanced is None:
                return await self._get(order_id)
            order = advanced
        return order

    async def _step(self, order: Order) -> Order | None:
        """One step from the current state; None when it must wait for a later retry."""
        if order.state is SagaState.COMPENSATING:
            return await self._compensate(order)
        spec = spec_during(order.state)
        if spec is None:
            raise AssertionError(f"no step from {order.state}")
        return await self._forward(order, spec)

    async def _forward(self, order: Order, spec: StepSpec) -> Order | None:
        await self._log(order, spec.step, StepStatus.STARTED, spec.during)
        result = OK if spec.local else await self._calls[spec.step](order)
        if result.outcome is Outcome.OK:
            after = next_spec(spec)
            return await self._log(order, spec.step, StepStatus.SUCCEEDED,
                             after.during if after else SagaState.COMPLETED, result.detail)  # fmt: skip
        summary = f"{spec.step} {result.outcome.value}: {result.detail}"
        may_compensate = spec.kind is StepKind.COMPENSABLE or (
            spec.kind is StepKind.PIVOT and result.outcome is Outcome.REJECTED
        )
        if may_compensate and result.outcome is Outcome.UNKNOWN:
            # Before the pivot a failure to deliver is retried within the step's deadline, then undone.
            may_compensate = await self._past_deadline(order, spec.step)
            summary += f" (no clear answer within the step deadline of {self.step_deadline:g}s)"
        if may_compensate:
            return await self._log(order, spec.step, StepStatus.FAILED, SagaState.COMPENSATING, result.detail,
                             reason=summary)  # fmt: skip
        # Try again later: at or after the pivot only forward, for as long as it takes.
        await self._log(order, spec.step, StepStatus.FAILED, spec.during, result.detail)
        return await self._wait_or_stall(order, spec.step, spec.during, result, summary)

    async def _compensate(self, order: Order) -> Order | None:
        pending = await self._pending_compensations(order)
        for index, step in enumerate(pending):
            last = index == len(pending) - 1
            await self._log(order, step, StepStatus.STARTED, SagaState.COMPENSATING)
            result = OK if step in LOCAL_COMPENSATIONS else await self._calls[step](order)
            if result.outcome is not Outcome.OK:
                await self._log(order, step, StepStatus.FAILED, SagaState.COMPENSATING, result.detail)
                summary = f"{step} {result.outcome.value} while compensating: {result.detail}"
                return await self._wait_or_stall(order, step, SagaState.COMPENSATING, result, summary)
            state = SagaState.COMPENSATED if last else SagaState.COMPENSATING
            order = await self._log(order, step, StepStatus.SUCCEEDED, state, result.detail)
        if not pending:
            return await self._log(order, SAGA, StepStatus.SUCCEEDED, SagaState.COMPENSATED)
        return order

    async def _pending_compensations(self, order: Order) -> list[Step]:
        """Compensations of every compensable step that was started, newest first, not done yet.

        A remote step that was started may have landed, so it is undone even without a recorded success
        (releasing an unknown reservation leaves a tombstone that refuses it later); a local step that did
        not finish did nothing."""
        records = await self.log.steps(order.order_id)
        started = {r.step for r in records if r.status == StepStatus.STARTED}
        succeeded = {r.step for r in records if r.status == StepStatus.SUCCEEDED}
        pending = []
        for spec in reversed(FORWARD):
            if spec.compensation is None or spec.compensation in succeeded or spec.step not in started:
                continue
            if spec.local and spec.step not in succeeded:
                continue
            pending.append(spec.compensation)
        return pending

    async def _past_deadline(self, order: Order, step: Step) -> bool:
        """Has ``step`` gone without a clear answer for its deadline, counted from its first start?"""
        first = (await self.log.tries(order.order_id, step)).first_started
        return first is not None and (self._clock() - first).total_seconds() >= self.step_deadline

    async def _wait_or_stall(
        self, order: Order, step: Step, state: SagaState, result: StepResult, summary: str
    ) -> Order | None:
        """A step that does not compensate now: a refusal stalls the saga; a failure to deliver waits for
        the next pass (after the pivot however long that takes, logged ``overdue`` past the deadline)."""
        if result.outcome is Outcome.REJECTED:
            return await self._stall(order, step, state, f"{summary} (a clear no; retrying cannot change it)")
        tries = await self.log.tries(order.order_id, step)
        waited = (self._clock() - tries.first_started).total_seconds() if tries.first_started else 0.0
        if waited >= self.step_deadline and not tries.overdue:
            note = (f"no clear answer for {waited:.0f}s ({tries.attempts} attempts, deadline "
                    f"{self.step_deadline:g}s); still retrying: this step may not be undone")  # fmt: skip
            await self._log(order, step, StepStatus.OVERDUE, state, note)  # a saga.step event too
        return None

    async def _stall(self, order: Order, step: Step, state: SagaState, reason: str) -> Order:
        stalled = await self.log.stall(order.order_id, step, state, reason)
        self.events.emit("saga.step", order_id=order.order_id, step=step, status=StepStatus.STALLED.value,
                         state=stalled.state.value, detail=reason)  # fmt: skip
        self.events.emit("saga.needs_attention", order_id=order.order_id, step=step, stalled_in=state.value,
                         reason=reason)  # fmt: skip
        return stalled

    async def _log(
        self,
        order: Order,
        step: str,
        status: StepStatus,
        state: SagaState,
        detail: str = "",
        *,
        reason: str | None = None,
    ) -> Order:
        updated = await self.log.transition(
            order.order_id, step, status, state, {"detail": detail} if detail else None, reason=reason
        )
        self.events.emit("saga.step", order_id=order.order_id, step=step, status=status.value,
                         state=state.value, detail=detail)  # fmt: skip
        if state.terminal and state is not order.state:
            self.events.emit(f"saga.{state.value.lower()}", order_id=order.order_id, reason=updated.reason)
        return updated

    async def _get(self, order_id: str) -> Order:
        order = await self.log.get(order_id)
        if order is None:
            raise KeyError(order_id)
        return order
