"""Settings of the registry service, built once by the CLI (or a test) and passed to ``create_app``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harness import settings as defaults
from reference_services.common._settings import RegistryToken


class RegistrySettings(BaseModel):
    """How long instances live without heartbeats, how they are health-checked, and the service's limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_ttl: float = Field(
        defaults.REGISTRY_TTL, gt=0, allow_inf_nan=False, description="TTL when a registration has none."
    )
    check_interval: float = Field(
        defaults.REGISTRY_CHECK_INTERVAL,
        gt=0,
        allow_inf_nan=False,
        description="Seconds between health checks.",
    )
    check_timeout: float = Field(
        defaults.REGISTRY_CHECK_TIMEOUT, gt=0, allow_inf_nan=False, description="Bound on one health check."
    )
    check_failures: int = Field(
        defaults.REGISTRY_CHECK_FAILURES, ge=1, description="Consecutive failed checks before eviction."
    )
    max_body_bytes: int = Field(65536, ge=1, description="Largest request body accepted.")
    event_log: Path | None = Field(None, description="JSON-lines event file; None keeps events in memory.")
    max_instances: int = Field(10000, ge=1, description="Registrations beyond this are refused (507).")
    allow_remote: bool = Field(
        False, description="Accept instances (and health URLs) outside loopback; off: refused with 422."
    )
    token: RegistryToken | None = Field(
        None, description="Required on writes (register, heartbeat, deregister); None: writes are open."
    )
