"""The topology: which services run, how many instances, with which timings. TOML with built-in defaults.

host = "127.0.0.1"
[registry]
ttl = 5.0
check_interval = 1.0
checks_through_proxy = false
[services.users]
instances = 3
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness._net import is_loopback_host
from harness.errors import ConfigError

SERVICE_KINDS = ("users", "notifications", "orchestrator")


class RegistryTopology(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float = Field(default=5.0, gt=0)
    check_interval: float = Field(default=1.0, gt=0)
    check_timeout: float = Field(default=1.0, gt=0)
    check_failures: int = Field(default=3, ge=1)
    checks_through_proxy: bool = Field(
        default=False,
        description="Health checks reach each instance through its fault proxy, so a toxic or a disabled "
        "proxy also evicts it (a full partition); off: they reach it directly, so faults on the proxy "
        "are left to the callers' breakers.",
    )


class ServiceTopology(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instances: int = Field(default=1, ge=0, le=20)
    heartbeat_interval: float = Field(default=1.0, gt=0)
    max_in_flight: int = Field(default=64, ge=1)


def _default_services() -> dict[str, ServiceTopology]:
    return {
        "users": ServiceTopology(instances=3),
        "notifications": ServiceTopology(instances=1),
        "orchestrator": ServiceTopology(instances=1),
    }


class Topology(BaseModel):
    """The whole reference stack; every field has a default, so an empty file is the default stack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    registry: RegistryTopology = Field(default_factory=RegistryTopology)
    services: dict[str, ServiceTopology] = Field(default_factory=_default_services)
    startup_timeout: float = Field(default=30.0, gt=0)
    proxies: bool = Field(default=True, description="route every instance's traffic through a fault proxy")
    toxiproxy_seed: int | None = None

    @field_validator("host")
    @classmethod
    def _loopback_host(cls, host: str) -> str:
        if not is_loopback_host(host):
            raise ValueError(f"{host!r} is not a loopback address; the stack runs on this machine only")
        return host

    @field_validator("services")
    @classmethod
    def _known_services(cls, services: dict[str, ServiceTopology]) -> dict[str, ServiceTopology]:
        unknown = set(services) - set(SERVICE_KINDS)
        if unknown:
            raise ValueError(f"unknown service(s) {sorted(unknown)}; known: {list(SERVICE_KINDS)}")
        orchestrators = services.get("orchestrator")
        if orchestrators is not None and orchestrators.instances > 1:
            raise ValueError("orchestrator: one instance per saga log; more would drive the same sagas twice")
        return services

    def instances(self) -> list[tuple[str, str]]:
        """(kind, instance id) of every service instance, in start order."""
        merged = {**_default_services(), **self.services}
        return [(kind, f"{kind}-{n}") for kind in SERVICE_KINDS for n in range(1, merged[kind].instances + 1)]

    def service(self, kind: str) -> ServiceTopology:
        return self.services.get(kind) or _default_services()[kind]


def load_topology(path: Path | None) -> Topology:
    """The default topology, or the one in ``path``; a bad file is one ConfigError naming the problem."""
    if path is None:
        return Topology()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"topology file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"topology file {path} is not valid TOML: {exc}") from exc
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"topology file {path}: {where}: {first['msg']}") from exc
