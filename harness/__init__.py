"""Contract and chaos testing harness for microservices.

The public API is these modules (``__all__``): ``harness.resilience`` (breaker, balancers, retry,
bulkhead, deadline), ``harness.discovery`` (registry client, lookups, ServiceClient), ``harness.faults``
(the Toxiproxy-compatible server and client, the fault schedule), ``harness.stack`` (the stack as
processes), ``harness.settings`` (every default, the topology's tables), ``harness.checks`` (saga
invariants and checks), ``harness.timeline`` (typed events merged in time), ``harness.chaos`` (the Chaos
Toolkit extension and runner), ``harness.report`` (HTML reports), ``harness.events``, ``harness.net`` and
``harness.errors``. Every module whose name starts with ``_`` is private.
"""

from typing import Any

from harness.errors import HarnessError

__version__ = "0.1.0"

# the version, the error root, chaos discovery, and the public modules (everything else is private)
__all__ = [  # noqa: RUF022
    "HarnessError",
    "__version__",
    "discover",
    "chaos",
    "checks",
    "discovery",
    "errors",
    "events",
    "faults",
    "net",
    "report",
    "resilience",
    "settings",
    "stack",
    "timeline",
]


def discover(discover_system: bool = True) -> dict[str, Any]:
    """For ``chaos discover --no-install resilience-harness``: the Chaos Toolkit actions and probes."""
    from harness.chaos import discover as discover_extension

    return discover_extension(discover_system)
