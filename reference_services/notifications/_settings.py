"""Settings of one notifications instance, built once by the CLI (or a test) and passed to ``create_app``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness.settings import MAX_IN_FLIGHT, NotificationsOptions
from reference_services.common import NAME_PATTERN, ServiceSettings


class NotificationsSettings(ServiceSettings, NotificationsOptions):
    """Where the database lives, and how many requests may be in flight before new ones are shed."""

    instance_id: str = Field(default="notifications-1", min_length=1, max_length=63, pattern=NAME_PATTERN)
    database: Path = Field(description="SQLite file of the notifications.")
    max_in_flight: int = Field(
        default=MAX_IN_FLIGHT, ge=1, description="Requests in flight beyond this get 503."
    )
