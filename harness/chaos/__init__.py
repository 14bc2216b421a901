"""Chaos experiments on the stack: a Chaos Toolkit extension and ``harness chaos run``.

Experiment files use ``harness.chaos.actions`` and ``harness.chaos.probes`` as python providers and declare
``harness.chaos.control``, which prepares the stack and guarantees cleanup. ``run_chaos`` is what
``harness chaos run`` calls; the same file also runs with plain ``chaos run``.
"""

from harness.chaos._discovery import discover
from harness.chaos._runner import ChaosOutcome, cleanup_after_crash, load_and_validate, run_chaos
from harness.chaos._session import ChaosSession, CleanupReport
from harness.chaos._traffic import TrafficSpec

__all__ = [
    "ChaosOutcome",
    "ChaosSession",
    "CleanupReport",
    "TrafficSpec",
    "cleanup_after_crash",
    "discover",
    "load_and_validate",
    "run_chaos",
]
