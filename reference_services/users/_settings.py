"""Settings of one users instance, built once by the CLI (or a test) and passed to ``create_app``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from harness.settings import CLIENT_DEFAULTS, MAX_IN_FLIGHT, ClientSettings, UsersOptions
from reference_services.common import NAME_PATTERN, ServiceSettings


class UsersSettings(ServiceSettings, UsersOptions):
    """Where the (possibly shared) database lives, how often the outbox is relayed, and the load limit."""

    client_defaults: ClassVar[Mapping[str, ClientSettings]] = CLIENT_DEFAULTS["users"]

    instance_id: str = Field(default="users-1", min_length=1, max_length=63, pattern=NAME_PATTERN)
    database: Path = Field(description="SQLite file; instances of one stack share it.")
    max_in_flight: int = Field(
        default=MAX_IN_FLIGHT, ge=1, description="Requests in flight beyond this get 503."
    )
