"""Checks that read evidence from a running system and say, in sentences, what does not hold."""

from harness.checks._figures import Comparison, Figure, judge
from harness.checks._saga import (
    Anomaly,
    AnomalyKind,
    DeadLetterRecord,
    NotificationRecord,
    OrderRecord,
    ReservationRecord,
    SagaSnapshot,
    check_saga_invariants,
    find_anomalies,
)
from harness.checks._saga_sources import collect_saga_snapshot, read_saga_databases

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "Comparison",
    "DeadLetterRecord",
    "Figure",
    "NotificationRecord",
    "OrderRecord",
    "ReservationRecord",
    "SagaSnapshot",
    "check_saga_invariants",
    "collect_saga_snapshot",
    "find_anomalies",
    "judge",
    "read_saga_databases",
]
