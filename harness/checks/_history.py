"""A client's history of ``POST /orders`` calls, and what it must agree with in the final state.

As in Jepsen, each call is recorded with what the client could know: ``ok`` (an answer naming the
order), ``fail`` (it certainly did not happen: refused before it was sent, or a clear 4xx), ``unknown``
(it may have happened: a timeout or reset after sending, a 5xx). The checker holds the final state to
what the client was told, and to nothing it could not know.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from harness.checks._saga import COMPENSATED, COMPLETED, Anomaly, AnomalyKind, SagaSnapshot


class CallOutcome(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


class OrderCall(BaseModel):
    """One ``POST /orders`` as the client saw it (times are seconds since the run began)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    user_id: str
    amount: int
    phase: str  # "place" during the faults, "replay" after them
    invoked: float
    completed: float
    outcome: CallOutcome
    status: int | None = None
    order_id: str | None = None
    state: str | None = None
    error: str = ""


def check_history(calls: Sequence[OrderCall], snapshot: SagaSnapshot) -> list[Anomaly]:
    """What the final state owes the client's history: every anomaly, typed."""
    orders = {o.order_id: o for o in snapshot.orders}
    by_key: defaultdict[str, list[OrderCall]] = defaultdict(list)
    for call in calls:
        by_key[call.key].append(call)
    found: list[Anomaly] = []
    for call in calls:
        if call.outcome is not CallOutcome.OK or call.order_id is None:
            continue
        order = orders.get(call.order_id)
        if order is None:
            found.append(Anomaly(AnomalyKind.ACKNOWLEDGED_MISSING, call.order_id,
                                 f"key {call.key}: the client was given order {call.order_id}, which is not "
                                 "in the database"))  # fmt: skip
        elif call.state in (COMPLETED, COMPENSATED) and order.state != call.state:
            found.append(Anomaly(AnomalyKind.LOST, call.order_id,
                                 f"order {call.order_id}: the client was told {call.state}, it ended "
                                 f"{order.state}"))  # fmt: skip
    keyed: defaultdict[str, set[str]] = defaultdict(set)
    for order in snapshot.orders:
        if order.idempotency_key is not None:
            keyed[order.idempotency_key].add(order.order_id)
    for key, key_calls in sorted(by_key.items()):
        given = {c.order_id for c in key_calls if c.outcome is CallOutcome.OK and c.order_id}
        if len(given | keyed.get(key, set())) > 1:
            found.append(Anomaly(AnomalyKind.KEY_NOT_IDEMPOTENT, key,
                                 f"key {key}: {len(given | keyed[key])} different orders "
                                 f"({', '.join(sorted(given | keyed[key]))})"))  # fmt: skip
        if keyed.get(key) and all(c.outcome is CallOutcome.FAIL for c in key_calls):
            found.append(Anomaly(AnomalyKind.FAILED_BUT_PRESENT, key,
                                 f"key {key}: every call failed for certain, yet order "
                                 f"{', '.join(sorted(keyed[key]))} exists"))  # fmt: skip
    for key, order_ids in sorted(keyed.items()):
        if key not in by_key:
            found.append(Anomaly(AnomalyKind.PHANTOM, key,
                                 f"order {', '.join(sorted(order_ids))} has key {key}, which no client "
                                 "sent"))  # fmt: skip
    return found
