"""The order saga: reserve credit -> record order -> notify -> confirm credit, with compensations.

Reserve and record can be undone (release credit, cancel order); notify is the pivot: once a customer
was told, the saga only moves forward, and confirm is retried until it succeeds. Every participant call
is idempotent by a key derived from the saga id, so a step whose outcome was lost in a crash is simply
run again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from harness.events import EventLog

from ._log import Order, SagaLog, SagaState


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"  # the participant said no, definitively: compensate
    UNKNOWN = "unknown"  # no clear answer (transport error, 5xx): the call may or may not have happened


@dataclass(frozen=True)
class StepResult:
    outcome: Outcome
    detail: str


class Participants(Protocol):
    """The remote side of each step; every method must be idempotent for the same order."""

    async def reserve_credit(self, order: Order) -> StepResult: ...
    async def release_credit(self, order: Order) -> StepResult: ...
    async def confirm_credit(self, order: Order) -> StepResult: ...
    async def notify(self, order: Order) -> StepResult: ...


class SagaDriver:
    """Moves one saga as far as it can go now; call again later to continue one that had to wait."""

    def __init__(self, log: SagaLog, participants: Participants, events: EventLog) -> None:
        self.log = log
        self.participants = participants
        self.events = events

    async def drive(self, order_id: str) -> Order:
        """Run steps until the saga is terminal or a step must be retried later; returns the order then."""
        order = self._get(order_id)
        while not order.state.terminal:
            advanced = await self._step(order)
            if advanced is None:
                return self._get(order_id)
            order = advanced
        return order

    async def _step(self, order: Order) -> Order | None:
        """One step from the current state; None when it must wait for a later retry."""
        match order.state:
            case SagaState.PENDING | SagaState.RESERVING_CREDIT:
                return await self._forward(order, "reserve_credit", SagaState.RESERVING_CREDIT,
                                           SagaState.RECORDING_ORDER, compensable=True)  # fmt: skip
            case SagaState.RECORDING_ORDER:
                self._log(order, "record_order", "started", SagaState.RECORDING_ORDER)
                return self._log(order, "record_order", "succeeded", SagaState.NOTIFYING)
            case SagaState.NOTIFYING:
                return await self._forward(order, "notify", SagaState.NOTIFYING, SagaState.CONFIRMING_CREDIT,
                                           compensable=True)  # fmt: skip
            case SagaState.CONFIRMING_CREDIT:
                return await self._forward(order, "confirm_credit", SagaState.CONFIRMING_CREDIT,
                                           SagaState.COMPLETED, compensable=False)  # fmt: skip
            case SagaState.COMPENSATING:
                return await self._compensate(order)
            case _:
                raise AssertionError(f"no step from {order.state}")

    async def _forward(
        self, order: Order, step: str, during: SagaState, after: SagaState, *, compensable: bool
    ) -> Order | None:
        self._log(order, step, "started", during)
        result = await getattr(self.participants, step)(order)
        if result.outcome is Outcome.OK:
            return self._log(order, step, "succeeded", after, result.detail)
        if not compensable:
            # Past the pivot: never undo, retry later (the call is idempotent).
            self._log(order, step, "failed", during, result.detail)
            return None
        self._log(order, step, "failed", SagaState.COMPENSATING, result.detail,
                  reason=f"{step} {result.outcome.value}: {result.detail}")  # fmt: skip
        return self._get(order.order_id)

    async def _compensate(self, order: Order) -> Order | None:
        steps = {record.step for record in self.log.steps(order.order_id) if record.status == "succeeded"}
        if "record_order" in steps and "cancel_order" not in steps:
            self._log(order, "cancel_order", "started", SagaState.COMPENSATING)
            self._log(order, "cancel_order", "succeeded", SagaState.COMPENSATING)
        # Release even when the reservation was never confirmed to us: it may have landed just before a
        # timeout or a crash, and releasing an unknown reservation leaves a tombstone that refuses it later.
        self._log(order, "release_credit", "started", SagaState.COMPENSATING)
        result = await self.participants.release_credit(order)
        if result.outcome is not Outcome.OK:
            self._log(order, "release_credit", "failed", SagaState.COMPENSATING, result.detail)
            return None
        return self._log(order, "release_credit", "succeeded", SagaState.COMPENSATED, result.detail)

    def _log(
        self,
        order: Order,
        step: str,
        status: str,
        state: SagaState,
        detail: str = "",
        *,
        reason: str | None = None,
    ) -> Order:
        updated = self.log.transition(
            order.order_id, step, status, state, {"detail": detail} if detail else None, reason=reason
        )
        self.events.emit("saga.step", order_id=order.order_id, step=step, status=status, state=state.value,
                         detail=detail)  # fmt: skip
        if state.terminal and state is not order.state:
            self.events.emit(f"saga.{state.value.lower()}", order_id=order.order_id, reason=updated.reason)
        return updated

    def _get(self, order_id: str) -> Order:
        order = self.log.get(order_id)
        if order is None:
            raise KeyError(order_id)
        return order
