"""The order saga as data: its steps in order, what kind each is, and what undoes it.

The order follows the pivot rule of saga design: compensable steps first, then the pivot (the go/no-go
point, here confirming the credit), then only retriable steps. Telling the customer is the last step,
after the pivot, so no customer is ever told about an order that may still be cancelled. Adding a step
means adding one row to ``FORWARD`` (and a participant call when it is remote).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SagaState(enum.StrEnum):
    """Where a saga stands; the forward states are the ``during`` states of ``FORWARD``."""

    PENDING = "PENDING"
    RESERVING_CREDIT = "RESERVING_CREDIT"
    RECORDING_ORDER = "RECORDING_ORDER"
    CONFIRMING_CREDIT = "CONFIRMING_CREDIT"
    NOTIFYING = "NOTIFYING"
    COMPLETED = "COMPLETED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"  # refused where nothing may be undone: an operator decides

    @property
    def terminal(self) -> bool:
        """The saga is done, one way or the other."""
        return self in (SagaState.COMPLETED, SagaState.COMPENSATED)

    @property
    def final(self) -> bool:
        """Nothing moves this saga on by itself any more (terminal, or waiting for an operator)."""
        return self.terminal or self is SagaState.NEEDS_ATTENTION


class Step(enum.StrEnum):
    """Every step and compensation; the values are what the saga log records."""

    RESERVE_CREDIT = "reserve_credit"
    RECORD_ORDER = "record_order"
    CONFIRM_CREDIT = "confirm_credit"
    NOTIFY = "notify"
    CANCEL_ORDER = "cancel_order"
    RELEASE_CREDIT = "release_credit"


class StepKind(enum.Enum):
    """How a step fails: what the saga may do when a step has no clear success."""

    COMPENSABLE = "compensable"  # before the pivot: a clear no, or no clear yes in its deadline, compensates
    PIVOT = "pivot"  # a clear no compensates; no clear answer is retried until done: it may have happened
    RETRIABLE = "retriable"  # after the pivot: only forward, retried until done


@dataclass(frozen=True)
class StepSpec:
    step: Step
    during: SagaState
    kind: StepKind
    compensation: Step | None = None
    local: bool = False  # done in the saga log itself, no remote call


FORWARD: tuple[StepSpec, ...] = (
    StepSpec(Step.RESERVE_CREDIT, SagaState.RESERVING_CREDIT, StepKind.COMPENSABLE, Step.RELEASE_CREDIT),
    StepSpec(
        Step.RECORD_ORDER, SagaState.RECORDING_ORDER, StepKind.COMPENSABLE, Step.CANCEL_ORDER, local=True
    ),
    StepSpec(Step.CONFIRM_CREDIT, SagaState.CONFIRMING_CREDIT, StepKind.PIVOT),
    StepSpec(Step.NOTIFY, SagaState.NOTIFYING, StepKind.RETRIABLE),
)

LOCAL_COMPENSATIONS = frozenset({Step.CANCEL_ORDER})


class StepStatus(enum.StrEnum):
    """What one saga log row says."""

    CREATED = "created"  # the saga itself (step "saga")
    RESUMED = "resumed"  # an operator sent a NEEDS_ATTENTION saga on (step "saga")
    STARTED = "started"  # written before the call: it may or may not have happened
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OVERDUE = "overdue"  # past its deadline without a clear answer, and still retried (it may not undo)
    STALLED = "stalled"  # refused where no compensation is allowed: the saga needs attention


SAGA = "saga"  # the step name of rows about the saga as a whole


def spec_during(state: SagaState) -> StepSpec | None:
    """The forward step a saga in ``state`` is running (PENDING runs the first one)."""
    if state is SagaState.PENDING:
        return FORWARD[0]
    return next((spec for spec in FORWARD if spec.during is state), None)


def next_spec(spec: StepSpec) -> StepSpec | None:
    """The forward step after ``spec``; None after the last one."""
    index = FORWARD.index(spec)
    return FORWARD[index + 1] if index + 1 < len(FORWARD) else None
