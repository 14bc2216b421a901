"""Settings every reference service instance has: who it is, where it is reachable, where to register."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ServiceSettings(BaseModel):
    """Base of each service's settings model; services add their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: str = Field(min_length=1, max_length=63, pattern=NAME_PATTERN)
    advertise_host: str = "127.0.0.1"
    advertise_port: int = Field(default=0, ge=0, le=65535)
    registry_url: str | None = None
    heartbeat_interval: float = Field(default=1.0, gt=0)
    ttl: float | None = Field(default=None, gt=0)
    weight: int = Field(default=1, ge=1, le=1000)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    event_log: Path | None = None
    test_mode: bool = Field(default=False, description="Serve the provider-state route of contract tests.")
