"""The order saga driver: runs the steps of ``_steps.FORWARD`` and, when it must, their compensations.

Semantics (the pivot rule): before the pivot, any step without a clear success compensates every step
that was started (it may have landed), newest first. At the pivot, a clear "no" compensates the same
way, but no clear answer is retried, because the pivot may have happened. After the pivot the saga only
moves forward. Every retried call is idempotent (keys derived from the saga id) and bounded: a step that
has no clear answer after ``max_attempts`` starts, or a clear "no" where no compensation is allowed,
leaves the saga visibly NEEDS_ATTENTION instead of retrying it forever.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from harness.events import EventLog

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

DEFAULT_MAX_ATTEMPTS = 30


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"  # the participant said no, definitively: the call did not happen
    UNKNOWN = "unknown"  # no clear answer (transport error, 5xx): the call may or may not have happened


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
    """Moves one saga as far as it can go now; call again later to continue one that had to wait."""

    def __init__(
        self,
        log: SagaLog,
        participants: Participants,
        events: EventLog,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.log = log
        self.events = events
        self.max_attempts = max_attempts
        self._calls: dict[Step, Call] = {
            Step.RESERVE_CREDIT: participants.reserve_credit,
            Step.CONFIRM_CREDIT: participants.confirm_credit,
            Step.NOTIFY: participants.notify,
            Step.RELEASE_CREDIT: participants.release_credit,
        }

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
        if spec.kind is StepKind.COMPENSABLE or (
            spec.kind is StepKind.PIVOT and result.outcome is Outcome.REJECTED
        ):
            return await self._log(order, spec.step, StepStatus.FAILED, SagaState.COMPENSATING, result.detail,
                             reason=summary)  # fmt: skip
        # The pivot may have happened: only forward from here.
        await self._log(order, spec.step, StepStatus.FAILED, spec.during, result.detail)
        return await self._retry_or_stall(order, spec.step, spec.during, result, summary)

    async def _compensate(self, order: Order) -> Order | None:
        pending = await self._pending_compensations(order)
        for index, step in enumerate(pending):
            last = index == len(pending) - 1
            await self._log(order, step, StepStatus.STARTED, SagaState.COMPENSATING)
            result = OK if step in LOCAL_COMPENSATIONS else await self._calls[step](order)
            if result.outcome is not Outcome.OK:
                await self._log(order, step, StepStatus.FAILED, SagaState.COMPENSATING, result.detail)
                summary = f"{step} {result.outcome.value} while compensating: {result.detail}"
                return await self._retry_or_stall(order, step, SagaState.COMPENSATING, result, summary)
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

    async def _retry_or_stall(
        self, order: Order, step: Step, state: SagaState, result: StepResult, summary: str
    ) -> Order | None:
        """A step that may not compensate: wait for the next drive, or stall once retrying cannot help."""
        if result.outcome is Outcome.REJECTED:
            return await self._stall(order, step, state, f"{summary} (a clear no; retrying cannot change it)")
        attempts = await self.log.attempts(order.order_id, step)
        if attempts >= self.max_attempts:
            return await self._stall(
                order, step, state, f"{summary} (no clear answer in {attempts} attempts)"
            )
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
