"""Settings of a saga orchestrator instance; its knobs and client defaults come from ``harness.settings``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from harness.settings import CLIENT_DEFAULTS, MAX_IN_FLIGHT, ClientSettings, OrchestratorOptions
from reference_services.common import NAME_PATTERN, ServiceSettings


class OrchestratorSettings(ServiceSettings, OrchestratorOptions):
    """One orchestrator per database: it alone drives the sagas logged there."""

    client_defaults: ClassVar[Mapping[str, ClientSettings]] = CLIENT_DEFAULTS["orchestrator"]

    instance_id: str = Field(default="orchestrator-1", min_length=1, max_length=63, pattern=NAME_PATTERN)
    database: Path
    max_in_flight: int = Field(default=MAX_IN_FLIGHT, ge=1)
