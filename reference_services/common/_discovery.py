"""How a service instance joins the system: register and heartbeat, and reach other services by name.

The clients towards other services are configured by the instance's settings (``settings.client``:
the service's defaults with what the topology changes); nothing here or in an app hard-codes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from harness.discovery import (
    ClientMetrics,
    DiscoveryRefresh,
    InstanceSource,
    Registration,
    RegistrationKeeper,
    RegistryClient,
    RegistryLookup,
    ServiceClient,
    ServiceClientConfig,
    StaticInstances,
)
from harness.errors import HarnessError
from harness.events import EventLog

from ._settings import ServiceSettings


class Peers:
    """ServiceClients to other services, found through the registry; one client per target service."""

    def __init__(
        self,
        source: InstanceSource,
        events: EventLog,
        metrics: ClientMetrics,
        configs: Mapping[str, ServiceClientConfig] | None = None,
    ) -> None:
        self._source = source
        self._events = events
        self._metrics = metrics
        self._configs = dict(configs or {})
        self._clients: dict[str, ServiceClient] = {}

    def client(self, service: str) -> ServiceClient:
        """The ServiceClient for ``service``, configured as this instance's settings say."""
        client = self._clients.get(service)
        if client is None:
            client = ServiceClient(
                service,
                self._source,
                config=self._configs.get(service),
                events=self._events,
                metrics=self._metrics,
            )
            self._clients[service] = client
        return client

    async def reachable(self, *services: str) -> dict[str, bool]:
        """For readiness: does discovery know at least one instance of each service right now?"""
        checks = {}
        for service in services:
            try:
                checks[service] = len(await self._source.instances(service)) > 0
            except HarnessError:
                checks[service] = False
        return checks

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


@asynccontextmanager
async def joined(
    settings: ServiceSettings, service: str, events: EventLog, metrics: ClientMetrics
) -> AsyncIterator[Peers]:
    """Register this instance (when a registry is configured) for the lifetime of the block.

    Without a registry the instance runs alone and calls to peers fail with NoAvailableInstance.
    """
    tables = {target: settings.client(target) for target in settings.client_defaults}
    configs = {target: table.to_config() for target, table in tables.items()}
    refresh: dict[str, DiscoveryRefresh] = {t: table.discovery.to_refresh() for t, table in tables.items()}
    async with AsyncExitStack() as stack:
        if settings.registry_url is None:
            peers = Peers(StaticInstances(()), events, metrics, configs)
        else:
            token = settings.registry_token.get_secret_value() if settings.registry_token else None
            registry = await stack.enter_async_context(RegistryClient(settings.registry_url, token=token))
            lookup = RegistryLookup(registry, refresh=refresh, events=events)
            stack.push_async_callback(lookup.aclose)
            peers = Peers(lookup, events, metrics, configs)
            await stack.enter_async_context(
                RegistrationKeeper(
                    registry,
                    registration(settings, service),
                    interval=settings.heartbeat_interval,
                    events=events,
                )
            )
        stack.push_async_callback(peers.aclose)
        yield peers


def registration(settings: ServiceSettings, service: str) -> Registration:
    """What this instance tells the registry: its advertised address, and its health URL.

    The health URL is the instance's own port, so the registry's checks see the instance itself and a
    fault on the proxy in front of it is left to the callers' breakers; with ``advertise_health`` it is
    the advertised address (checks cross the proxy, as a full partition would). Without
    ``health_check`` there is none: the instance stays listed for as long as it heartbeats.
    """
    host = f"[{settings.advertise_host}]" if ":" in settings.advertise_host else settings.advertise_host
    direct = settings.bound_port or settings.advertise_port
    health_port = settings.advertise_port if settings.advertise_health else direct
    return Registration(
        instance_id=settings.instance_id,
        service=service,
        address=settings.advertise_host,
        port=settings.advertise_port,
        health_url=f"http://{host}:{health_port}/health" if settings.health_check else None,
        weight=settings.weight,
        ttl=settings.ttl,
    )
