"""The consumers' real clients, pointed at a pact mock server instead of discovery."""

from __future__ import annotations

from pact.pact import PactServer

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.resilience import RetryPolicy

# What the orchestrator gives its ServiceClients (reference_services/orchestrator/_app.py).
ORCHESTRATOR_CLIENT = ServiceClientConfig(retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.5))


class RecordedSleeps:
    """Stands in for asyncio.sleep in a ServiceClient: records the waits, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def mock_client(
    service: str, server: PactServer, config: ServiceClientConfig, sleeps: RecordedSleeps | None = None
) -> ServiceClient:
    """A ServiceClient whose only instance of ``service`` is the mock server."""
    instance = Instance(id=f"{service}-pact", service=service, address="127.0.0.1", port=server.port or 0)
    return ServiceClient(
        service, StaticInstances([instance]), config=config, sleep=sleeps or RecordedSleeps()
    )
