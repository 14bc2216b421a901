"""Contract and chaos testing harness for microservices.

The subpackages are the public API: ``harness.resilience`` (breaker, balancers, retry, bulkhead,
deadline), ``harness.discovery`` (registry client, lookups, ServiceClient), ``harness.stack`` (service
processes), ``harness.events`` (JSON-lines event log) and ``harness.errors`` (the error tree).
"""

from harness.errors import HarnessError

__version__ = "0.1.0"

__all__ = ["HarnessError", "__version__"]
