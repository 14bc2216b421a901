"""The reference service registry: register, heartbeat with TTL, active health checks, lookup and watch."""

from ._app import create_app
from ._settings import RegistrySettings

__all__ = ["RegistrySettings", "create_app"]
