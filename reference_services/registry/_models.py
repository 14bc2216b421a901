"""Wire models of the registry's HTTP API (pydantic v2, ``extra="forbid"``, strict types)."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from reference_services.common._settings import NAME_PATTERN
from reference_services.common._wire import JsonInteger

from ._store import HealthStatus

NAME_MAX_LENGTH = 63
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        labels = value.split(".")
        if len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
            raise ValueError("address must be an IP address or a hostname") from None
    return value


def _http_url(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise ValueError("health_url must not contain whitespace")
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError("health_url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError("health_url must be an absolute http:// or https:// URL with a host")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)]
Address = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_host)]
HealthUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_http_url)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=63)]
MetadataValue = Annotated[str, StringConstraints(max_length=255)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=32)]


class RegistrationRequest(BaseModel):
    """Body of ``PUT /v1/instances/{instance_id}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    service: Name
    address: Address
    port: Annotated[int, Field(ge=1, le=65535), JsonInteger]
    health_url: HealthUrl | None = None
    metadata: Metadata = Field(default_factory=dict)
    weight: Annotated[int, Field(ge=1, le=1000), JsonInteger] = 1
    ttl: Annotated[float, Field(ge=0.1, le=3600, allow_inf_nan=False)] | None = None


class InstanceView(BaseModel):
    """One registered instance, as every endpoint shows it."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str
    service: str
    address: str
    port: int
    health_url: str | None
    metadata: dict[str, str]
    weight: int
    status: HealthStatus
    registered_at: datetime
    last_heartbeat_at: datetime
    expires_in: float = Field(description="Seconds until the instance expires without a heartbeat.")
    consecutive_failures: int


class HeartbeatResponse(BaseModel):
    """Answer of ``PUT /v1/instances/{instance_id}/heartbeat``."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str
    ttl: float
    expires_in: float


class ServiceSummary(BaseModel):
    """Instance counts of one service."""

    model_config = ConfigDict(extra="forbid")

    instances: int
    healthy: int


class ServicesResponse(BaseModel):
    """Answer of ``GET /v1/services``: the global change index and every service with instances."""

    model_config = ConfigDict(extra="forbid")

    index: int
    services: dict[str, ServiceSummary]


class InstancesResponse(BaseModel):
    """Answer of ``GET /v1/services/{service}/instances``, sorted by instance id."""

    model_config = ConfigDict(extra="forbid")

    service: str
    index: int
    instances: list[InstanceView]
