"""Settings of a saga orchestrator instance."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from reference_services.common import NAME_PATTERN, ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """One orchestrator per database: it alone drives the sagas logged there."""

    instance_id: str = Field(default="orchestrator-1", min_length=1, max_length=63, pattern=NAME_PATTERN)
    database: Path
    max_in_flight: int = Field(default=64, ge=1)
    recovery_interval: float = Field(
        default=1.0, gt=0, description="seconds between re-drives of stuck sagas"
    )
    saga_deadline: float = Field(
        default=10.0, gt=0, description="how long POST /orders waits for the outcome"
    )
    call_timeout: float = Field(default=2.0, gt=0, description="per attempt, towards users and notifications")
    step_attempts: int = Field(
        default=30,
        ge=1,
        description="starts of a step that may not compensate before the saga stops as NEEDS_ATTENTION",
    )
