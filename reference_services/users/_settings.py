"""Settings of one users instance, built once by the CLI (or a test) and passed to ``create_app``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from reference_services.common import NAME_PATTERN, ServiceSettings


class UsersSettings(ServiceSettings):
    """Where the (possibly shared) database lives, how often the outbox is relayed, and the load limit."""

    instance_id: str = Field(default="users-1", min_length=1, max_length=63, pattern=NAME_PATTERN)
    database: Path = Field(description="SQLite file; instances of one stack share it.")
    outbox_interval: float = Field(
        default=0.2, gt=0, allow_inf_nan=False, description="Seconds between outbox relay rounds."
    )
    max_in_flight: int = Field(default=64, ge=1, description="Requests in flight beyond this get 503.")
