"""The history checker: what the final state owes to what each client was told."""

from __future__ import annotations

import pytest

from harness.checks import AnomalyKind, OrderRecord, SagaSnapshot
from harness.checks._history import CallOutcome, OrderCall, check_history


def call(key: str, outcome: CallOutcome, order_id: str | None = None, state: str | None = None,
         phase: str = "place") -> OrderCall:  # fmt: skip
    return OrderCall(key=key, user_id="u1", amount=10, phase=phase, invoked=0.0, completed=0.1,
                     outcome=outcome, order_id=order_id, state=state)  # fmt: skip


def snapshot(*orders: tuple[str, str, str]) -> SagaSnapshot:
    """(order id, key, state) per order."""
    return SagaSnapshot(orders=[OrderRecord(o, "u1", 10, s, idempotency_key=k) for o, k, s in orders])


def kinds(calls: list[OrderCall], snap: SagaSnapshot) -> list[AnomalyKind]:
    return [a.kind for a in check_history(calls, snap)]


@pytest.mark.behaviour("saga.invariants")
def test_a_consistent_history_has_no_anomaly() -> None:
    """ok with its outcome, unknown either way, a definite failure that left nothing, replays agree."""
    calls = [
        call("k1", CallOutcome.OK, "o1", "COMPLETED"),
        call("k1", CallOutcome.OK, "o1", "COMPLETED", phase="replay"),
        call("k2", CallOutcome.UNKNOWN),
        call("k3", CallOutcome.FAIL),
        call("k3", CallOutcome.OK, "o3", "RESERVING_CREDIT", phase="replay"),
        call("k4", CallOutcome.FAIL),
    ]
    snap = snapshot(("o1", "k1", "COMPLETED"), ("o2", "k2", "COMPENSATED"), ("o3", "k3", "COMPLETED"))
    assert check_history(calls, snap) == []


@pytest.mark.behaviour("saga.invariants")
@pytest.mark.parametrize(
    ("calls", "orders", "kind"),
    [
        pytest.param([call("k1", CallOutcome.OK, "o1", "COMPLETED")], [], AnomalyKind.ACKNOWLEDGED_MISSING,
                     id="acknowledged-missing"),
        pytest.param([call("k1", CallOutcome.OK, "o1", "COMPLETED")], [("o1", "k1", "COMPENSATED")],
                     AnomalyKind.LOST, id="outcome-changed"),
        pytest.param([call("k1", CallOutcome.OK, "o1", "COMPLETED"),
                      call("k1", CallOutcome.OK, "o2", "COMPLETED", phase="replay")],
                     [("o1", "k1", "COMPLETED"), ("o2", "k1x", "COMPLETED")], AnomalyKind.KEY_NOT_IDEMPOTENT,
                     id="two-orders-for-one-key"),
        pytest.param([call("k1", CallOutcome.FAIL)], [("o1", "k1", "COMPLETED")],
                     AnomalyKind.FAILED_BUT_PRESENT, id="failed-but-present"),
        pytest.param([], [("o1", "k9", "COMPLETED")], AnomalyKind.PHANTOM, id="phantom"),
    ],
)  # fmt: skip
def test_each_broken_promise_is_named(
    calls: list[OrderCall], orders: list[tuple[str, str, str]], kind: AnomalyKind
) -> None:
    assert kind in kinds(calls, snapshot(*orders))
