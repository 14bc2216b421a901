"""What the client side of discovery knows about an instance, and the registry's JSON as the client reads it.

The registry service has its own models; these are the consumer's view, kept separate on purpose so the
contract tests pin the boundary instead of a shared class hiding drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class Instance:
    """One reachable instance of a service."""

    id: str
    service: str
    address: str
    port: int
    weight: int = 1
    metadata: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


class Registration(BaseModel):
    """What an instance tells the registry about itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: str = Field(min_length=1, max_length=63)
    service: str = Field(min_length=1, max_length=63)
    address: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    health_url: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    weight: int = Field(default=1, ge=1, le=1000)
    ttl: float | None = Field(default=None, gt=0)

    def body(self) -> dict[str, object]:
        return self.model_dump(exclude={"instance_id"})


class InstanceView(BaseModel):
    """An instance as the registry lists it; unknown extra keys are tolerated (the provider may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    instance_id: str
    service: str
    address: str
    port: int
    weight: int = 1
    metadata: dict[str, str] = Field(default_factory=dict)
    status: str = "passing"

    def to_instance(self) -> Instance:
        return Instance(
            id=self.instance_id,
            service=self.service,
            address=self.address,
            port=self.port,
            weight=self.weight,
            metadata=dict(self.metadata),
        )


class InstanceList(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    service: str
    index: int
    instances: list[InstanceView]


class HeartbeatAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    instance_id: str
    ttl: float
    expires_in: float
