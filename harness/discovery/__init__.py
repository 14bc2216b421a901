"""Service discovery on the client side: registry client, registration keeper, lookups and ServiceClient."""

from harness.discovery._keeper import RegistrationKeeper
from harness.discovery._lookup import DiscoveryRefresh, InstanceSource, RegistryLookup, StaticInstances
from harness.discovery._metrics import ClientMetrics
from harness.discovery._models import Instance, Registration
from harness.discovery._registry_client import REGISTRY_TOKEN_ENV, REGISTRY_TOKEN_HEADER, RegistryClient
from harness.discovery._service_client import InstanceStats, ServiceClient, ServiceClientConfig

__all__ = [
    "REGISTRY_TOKEN_ENV",
    "REGISTRY_TOKEN_HEADER",
    "ClientMetrics",
    "DiscoveryRefresh",
    "Instance",
    "InstanceSource",
    "InstanceStats",
    "Registration",
    "RegistrationKeeper",
    "RegistryClient",
    "RegistryLookup",
    "ServiceClient",
    "ServiceClientConfig",
    "StaticInstances",
]
