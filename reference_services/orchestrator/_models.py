"""Wire models of the orchestrator API."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from reference_services.common import NAME_PATTERN, JsonInteger

from ._log import Order, SagaState, StepRecord


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=63, pattern=NAME_PATTERN)
    amount: Annotated[int, Field(gt=0, le=10**12, strict=True), JsonInteger]


class StepView(BaseModel):
    seq: int
    step: str
    status: str
    detail: dict[str, object]
    at: str

    @classmethod
    def of(cls, record: StepRecord) -> StepView:
        return cls(seq=record.seq, step=record.step, status=record.status, detail=json.loads(record.detail),
                   at=record.at)  # fmt: skip


class OrderView(BaseModel):
    order_id: str
    idempotency_key: str
    user_id: str
    amount: int
    state: SagaState
    reason: str | None
    created_at: str
    updated_at: str
    stalled_in: SagaState | None = None
    steps: list[StepView] | None = None

    @classmethod
    def of(cls, order: Order, steps: list[StepRecord] | None = None) -> OrderView:
        return cls(
            order_id=order.order_id,
            idempotency_key=order.idempotency_key,
            user_id=order.user_id,
            amount=order.amount,
            state=order.state,
            reason=order.reason,
            created_at=order.created_at,
            updated_at=order.updated_at,
            stalled_in=order.stalled_in,
            steps=[StepView.of(s) for s in steps] if steps is not None else None,
        )


class OrderList(BaseModel):
    orders: list[OrderView]
    counts: dict[str, int]
