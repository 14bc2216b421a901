"""Checks that read evidence from a running system and say, in sentences, what does not hold."""

from harness.checks._saga import SagaSnapshot, check_saga_invariants, collect_saga_snapshot

__all__ = ["SagaSnapshot", "check_saga_invariants", "collect_saga_snapshot"]
