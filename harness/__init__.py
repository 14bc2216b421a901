"""Contract and chaos testing harness for microservices.

The subpackages are the public API: ``harness.resilience`` (breaker, balancers, retry, bulkhead,
deadline), ``harness.discovery`` (registry client, lookups, ServiceClient), ``harness.faults`` (the
Toxiproxy-compatible server and client), ``harness.stack`` (the reference stack as processes),
``harness.checks`` (saga invariants), ``harness.events`` (JSON-lines event log) and ``harness.errors``.
"""

from typing import Any

from harness.errors import HarnessError

__version__ = "0.1.0"

__all__ = ["HarnessError", "__version__", "discover"]


def discover(discover_system: bool = True) -> dict[str, Any]:
    """For ``chaos discover --no-install resilience-harness``: the Chaos Toolkit actions and probes."""
    from harness.chaos import discover as discover_extension

    return discover_extension(discover_system)
