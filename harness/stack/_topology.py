"""The topology: which services run, how many instances, with which timings and client settings. TOML.

host = "127.0.0.1"
[registry]
ttl = 5.0
check_interval = 1.0
checks_through_proxy = false
health_checks = true
[services.users]
instances = 3
weight = [1, 1, 2]                    # per instance, or one number for all
[services.orchestrator.clients.users]  # the orchestrator's ServiceClient towards users
balancer = "weighted_round_robin"
breaker = false                        # or a table: { window_size = 10, minimum_calls = 5, ... }
[services.orchestrator.options]        # the service's own knobs
step_attempts = 30

Every key has a default (``harness.settings``, shared with the services); docs/topology.md lists them.
Each instance gets its part as one JSON file (``instance_config``), which the stack passes as ``--config``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness import settings as defaults
from harness.errors import ConfigError
from harness.net import is_loopback_host
from harness.settings import CLIENT_DEFAULTS, SERVICE_OPTIONS, ClientSettings, InstanceConfig, OptionValue

SERVICE_KINDS = ("users", "notifications", "orchestrator")
_KEY_ERROR = "topology_key"  # an error that names its key itself (where pydantic's location is too coarse)


class RegistryTopology(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float = Field(default=defaults.REGISTRY_TTL, gt=0)
    check_interval: float = Field(default=defaults.REGISTRY_CHECK_INTERVAL, gt=0)
    check_timeout: float = Field(default=defaults.REGISTRY_CHECK_TIMEOUT, gt=0)
    check_failures: int = Field(default=defaults.REGISTRY_CHECK_FAILURES, ge=1)
    checks_through_proxy: bool = Field(
        default=False,
        description="Health checks reach each instance through its fault proxy, so a toxic or a disabled "
        "proxy also evicts it (a full partition); off: they reach it directly, so faults on the proxy "
        "are left to the callers' breakers.",
    )
    health_checks: bool = Field(
        default=True,
        description="Instances register a health URL the registry checks; off: no health URL, an instance "
        "stays listed for as long as it heartbeats (TTL only).",
    )

    @model_validator(mode="after")
    def _checks_to_route(self) -> RegistryTopology:
        if self.checks_through_proxy and not self.health_checks:
            raise _key_error(
                "registry.checks_through_proxy", "needs health_checks = true (there is no check)"
            )
        return self


class ServiceTopology(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instances: int = Field(default=1, ge=0, le=20)
    heartbeat_interval: float = Field(default=defaults.HEARTBEAT_INTERVAL, gt=0)
    max_in_flight: int = Field(default=defaults.MAX_IN_FLIGHT, ge=1)
    weight: int | list[int] = Field(
        default=defaults.WEIGHT, description="Registered weight: one for every instance, or one each."
    )
    clients: dict[str, ClientSettings] = Field(
        default_factory=dict, description="Per target service, what changes from the caller's defaults."
    )
    options: dict[str, OptionValue] = Field(default_factory=dict, description="The service's own knobs.")

    @field_validator("weight")
    @classmethod
    def _weights_in_range(cls, weight: int | list[int]) -> int | list[int]:
        for value in weight if isinstance(weight, list) else [weight]:
            if not 1 <= value <= defaults.MAX_WEIGHT:
                raise ValueError(f"a weight is 1 to {defaults.MAX_WEIGHT}, got {value}")
        return weight

    def weights(self) -> list[int]:
        """One weight per instance."""
        return list(self.weight) if isinstance(self.weight, list) else [self.weight] * self.instances

    def check(self, kind: str) -> None:
        """What a field alone cannot say: weights per instance, known targets, options, whole tables."""
        where = f"services.{kind}"
        if isinstance(self.weight, list) and len(self.weight) != self.instances:
            raise _key_error(f"{where}.weight", f"{len(self.weight)} weights for {self.instances} instances")
        targets = CLIENT_DEFAULTS[kind]
        for target in self.clients:
            if target not in targets:
                calls = f"it calls {', '.join(sorted(targets))}" if targets else "it calls no other service"
                raise _key_error(
                    f"{where}.clients.{target}", f"{kind} has no client towards {target!r}; {calls}"
                )
            try:
                self.client(kind, target).check()
            except ValueError as exc:
                raise _key_error(f"{where}.clients.{target}", str(exc)) from exc
        try:
            SERVICE_OPTIONS[kind].model_validate(self.options, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"])
            message = first["msg"]
            if first["type"] == "extra_forbidden":
                message = (
                    f"unknown option; {kind} has: {', '.join(SERVICE_OPTIONS[kind].model_fields) or 'none'}"
                )
            raise _key_error(f"{where}.options.{key}", message) from exc

    def client(self, kind: str, target: str) -> ClientSettings:
        """The whole client table of ``kind`` towards ``target``: its defaults with this file's changes."""
        return CLIENT_DEFAULTS[kind][target].merged(self.clients.get(target))

    def options_of(self, kind: str) -> dict[str, Any]:
        """Every option of ``kind``, the file's values over the service's defaults."""
        return SERVICE_OPTIONS[kind].model_validate(self.options).model_dump()


def _default_services() -> dict[str, ServiceTopology]:
    return {
        "users": ServiceTopology(instances=3),
        "notifications": ServiceTopology(instances=1),
        "orchestrator": ServiceTopology(instances=1),
    }


def _key_error(where: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(_KEY_ERROR, "{message}", {"where": where, "message": message})


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
        # A table that does not say how many instances keeps the default count (users 3, others 1).
        services = {
            kind: service if "instances" in service.model_fields_set
            else service.model_copy(update={"instances": _default_services()[kind].instances})
            for kind, service in services.items()
        }  # fmt: skip
        orchestrators = services.get("orchestrator")
        if orchestrators is not None and orchestrators.instances > 1:
            raise ValueError("orchestrator: one instance per saga log; more would drive the same sagas twice")
        for kind, service in services.items():
            service.check(kind)
        return services

    def instances(self) -> list[tuple[str, str]]:
        """(kind, instance id) of every service instance, in start order."""
        merged = {**_default_services(), **self.services}
        return [(kind, f"{kind}-{n}") for kind in SERVICE_KINDS for n in range(1, merged[kind].instances + 1)]

    def service(self, kind: str) -> ServiceTopology:
        return self.services.get(kind) or _default_services()[kind]

    def client(self, kind: str, target: str) -> ClientSettings:
        """The client table ``kind`` uses towards ``target`` in this topology."""
        return self.service(kind).client(kind, target)

    def instance_config(self, kind: str, name: str) -> InstanceConfig:
        """Everything this topology says about one instance, as the stack hands it over (``--config``)."""
        names = [instance for k, instance in self.instances() if k == kind]
        if name not in names:
            raise ValueError(f"no instance {name!r} of {kind} in this topology")
        service = self.service(kind)
        return InstanceConfig(
            heartbeat_interval=service.heartbeat_interval,
            ttl=self.registry.ttl,
            weight=service.weights()[names.index(name)],
            max_in_flight=service.max_in_flight,
            health_check=self.registry.health_checks,
            advertise_health=self.registry.checks_through_proxy,
            clients={target: self.client(kind, target) for target in CLIENT_DEFAULTS[kind]},
            options=service.options_of(kind),
        )


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
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == _KEY_ERROR:
            where, message = first["ctx"]["where"], first["ctx"]["message"]
        raise ConfigError(f"topology file {path}: {where}: {message}") from exc
