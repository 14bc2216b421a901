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
step_deadline = 30.0
[services.inventory]                   # a service of your own: started per instance, proxied, registered
command = ["{python}", "inventory.py", "--port", "{port}"]
health = "/healthz"
instances = 2

Every key has a default (``harness.settings``, shared with the services); docs/topology.md lists them.
Each reference instance gets its part as one JSON file (``instance_config``), which the stack passes as
``--config``; a service of the user's own (``OwnServiceTopology``) gets only its port, name and environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from harness import settings as defaults
from harness._documents import Format, key_name, read_document
from harness._spec import unknown_placeholders
from harness.errors import ConfigError
from harness.net import is_loopback_host
from harness.settings import CLIENT_DEFAULTS, SERVICE_OPTIONS, ClientSettings, InstanceConfig, OptionValue

SERVICE_KINDS = ("users", "notifications", "orchestrator")
RESERVED_NAMES = ("registry", "toxiproxy", "harness")
_OWN_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
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
        return _weights_in_range(weight)

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
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                # A field never dumped (exclude) is one kept only to refuse a replaced option by name.
                known = [name for name, f in SERVICE_OPTIONS[kind].model_fields.items() if not f.exclude]
                message = f"unknown option; {kind} has: {', '.join(known) or 'none'}"
            raise _key_error(f"{where}.options.{key}", message) from exc

    def client(self, kind: str, target: str) -> ClientSettings:
        """The whole client table of ``kind`` towards ``target``: its defaults with this file's changes."""
        return CLIENT_DEFAULTS[kind][target].merged(self.clients.get(target))

    def options_of(self, kind: str) -> dict[str, Any]:
        """Every option of ``kind``, the file's values over the service's defaults."""
        return SERVICE_OPTIONS[kind].model_validate(self.options).model_dump()


class OwnServiceTopology(BaseModel):
    """``[services.<name>]`` of a service the harness does not ship: a ``command`` it starts once per
    instance (each on a free port, ``{port}`` in the command or ``env``), or the ``external`` loopback URLs
    of instances already running, which it never starts or stops. Either way each instance gets a fault
    proxy and the stack registers it on its behalf, heartbeating while ``health`` answers 200."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] | None = Field(
        default=None, min_length=1, description="Executable and arguments; placeholders {port}, {host}, "
        "{instance}, {workdir}, {python}."
    )  # fmt: skip
    external: list[str] | None = Field(
        default=None, min_length=1, max_length=20, description="http://host:port of each running instance."
    )
    health: str = Field(
        default="/health", pattern=r"^/", description="Answers 200 while the instance is well."
    )
    instances: int = Field(default=1, ge=1, le=20)
    weight: int | list[int] = Field(
        default=defaults.WEIGHT, description="One for every instance, or one each."
    )
    heartbeat_interval: float = Field(default=defaults.HEARTBEAT_INTERVAL, gt=0)
    env: dict[str, str] = Field(
        default_factory=dict, description="Added to the environment; placeholders too."
    )
    cwd: str | None = Field(
        default=None, description="Where the command runs (default: the topology's folder)."
    )

    @field_validator("weight")
    @classmethod
    def _weights_in_range(cls, weight: int | list[int]) -> int | list[int]:
        return _weights_in_range(weight)

    @model_validator(mode="before")
    @classmethod
    def _one_instance_per_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("external"), list) and "instances" not in data:
            return {**data, "instances": len(data["external"])}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> OwnServiceTopology:
        if (self.command is None) == (self.external is None):
            raise ValueError(
                "give a command (the stack starts it) or external URLs (already running), not both"
            )
        if self.external is not None:
            for url in self.external:
                _check_external(url)
            if self.instances != len(self.external):
                raise ValueError(f"instances = {self.instances} but {len(self.external)} external URLs")
            if self.env or self.cwd is not None:
                raise ValueError("env and cwd are for a command; an external service is not started here")
        if self.command is not None:
            for part in (*self.command, *self.env.values()):
                unknown_placeholders(part)
            if not any("{port}" in part for part in (*self.command, *self.env.values())):
                raise ValueError(
                    "the command (or env) must pass {port}: the stack picks each instance's port"
                )
        if isinstance(self.weight, list) and len(self.weight) != self.instances:
            raise ValueError(f"{len(self.weight)} weights for {self.instances} instances")
        return self

    def weights(self) -> list[int]:
        return list(self.weight) if isinstance(self.weight, list) else [self.weight] * self.instances


def _check_external(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None or parts.path not in ("", "/"):
        raise ValueError(f"external URL {url!r} is not http://host:port")


def _service_form(value: Any) -> str:
    """Which table a service is: a reference service's, or one of the user's own (a command or URLs)."""
    if isinstance(value, OwnServiceTopology):
        return "own"
    if isinstance(value, dict) and ("command" in value or "external" in value):
        return "own"
    return "reference"


AnyService = Annotated[
    Annotated[ServiceTopology, Tag("reference")] | Annotated[OwnServiceTopology, Tag("own")],
    Discriminator(_service_form),
]


def _weights_in_range(weight: int | list[int]) -> int | list[int]:
    for value in weight if isinstance(weight, list) else [weight]:
        if not 1 <= value <= defaults.MAX_WEIGHT:
            raise ValueError(f"a weight is 1 to {defaults.MAX_WEIGHT}, got {value}")
    return weight


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
    services: dict[str, AnyService] = Field(default_factory=_default_services)  # type: ignore[arg-type]
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
    def _known_services(
        cls, services: dict[str, ServiceTopology | OwnServiceTopology]
    ) -> dict[str, ServiceTopology | OwnServiceTopology]:
        checked: dict[str, ServiceTopology | OwnServiceTopology] = {}
        for kind, service in services.items():
            if isinstance(service, OwnServiceTopology):
                if kind in SERVICE_KINDS:
                    raise _key_error(f"services.{kind}", f"{kind} is a reference service: it takes no "
                                     "command or external URLs")  # fmt: skip
                if kind in RESERVED_NAMES or not _OWN_NAME.match(kind):
                    raise _key_error(f"services.{kind}", "a service of your own needs a name of lowercase "
                                     "letters, digits, '-' or '_' (at most 40) that is not one of "
                                     f"{', '.join(RESERVED_NAMES)}")  # fmt: skip
                checked[kind] = service
                continue
            if kind not in SERVICE_KINDS:
                raise ValueError(f"unknown service {kind!r}; known: {list(SERVICE_KINDS)}; a service of your "
                                 "own needs a command or external URLs")  # fmt: skip
            # A table that does not say how many instances keeps the default count (users 3, others 1).
            if "instances" not in service.model_fields_set:
                service = service.model_copy(update={"instances": _default_services()[kind].instances})
            if kind == "orchestrator" and service.instances > 1:
                raise ValueError(
                    "orchestrator: one instance per saga log; more would drive the same sagas twice"
                )
            service.check(kind)
            checked[kind] = service
        return checked

    def instances(self) -> list[tuple[str, str]]:
        """(kind, instance id) of every service instance, in start order: the reference services', then the
        user's own in the order of the file."""
        kinds = [*SERVICE_KINDS, *self.own_services()]
        return [(kind, f"{kind}-{n}") for kind in kinds for n in range(1, self._count(kind) + 1)]

    def _count(self, kind: str) -> int:
        return (self.services.get(kind) or _default_services()[kind]).instances

    def own_services(self) -> dict[str, OwnServiceTopology]:
        """The services of the user's own, by name, in the order of the file."""
        return {kind: s for kind, s in self.services.items() if isinstance(s, OwnServiceTopology)}

    def service(self, kind: str) -> ServiceTopology:
        """The table of a reference service (its defaults when the file has none)."""
        found = self.services.get(kind)
        if isinstance(found, OwnServiceTopology):
            raise ValueError(f"{kind} is a service of your own, not a reference service")
        return found or _default_services()[kind]

    def client(self, kind: str, target: str) -> ClientSettings:
        """The client table ``kind`` uses towards ``target`` in this topology."""
        return self.service(kind).client(kind, target)

    def with_commands_in(self, folder: Path) -> Topology:
        """This topology with every own command's working directory resolved against ``folder`` (the
        topology file's), so ``inventory.py`` in a command means the file next to the topology."""
        services = dict(self.services)
        for kind, own in self.own_services().items():
            if own.command is not None:
                services[kind] = own.model_copy(update={"cwd": str((folder / (own.cwd or ".")).resolve())})
        return self.model_copy(update={"services": services})

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


def fast_topology() -> Topology:
    """The reference stack with timings for short runs (tests, the saga check): TTL 2 s, checks every 0.5 s,
    heartbeats every 0.5 s, a seeded fault proxy."""
    return Topology(
        registry=RegistryTopology(ttl=2.0, check_interval=0.5, check_timeout=0.5, check_failures=2),
        services={kind: ServiceTopology(instances=n, heartbeat_interval=0.5)
                  for kind, n in (("users", 3), ("notifications", 1), ("orchestrator", 1))},
        toxiproxy_seed=7,
    )  # fmt: skip


def load_topology(path: Path | None) -> Topology:
    """The default topology, or the one in ``path``; a bad file is one ConfigError naming the problem."""
    if path is None:
        return Topology()
    if not path.is_file():
        raise ConfigError(f"topology file {path} does not exist")
    data = read_document(path, Format.TOML, label=f"topology file {path}")
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        if len(loc) > 2 and loc[0] == "services" and loc[2] in ("reference", "own"):
            del loc[2]  # the table's form (a discriminator tag), not a key of the file
        where = ".".join(key_name(p) if isinstance(p, str) else str(p) for p in loc) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == _KEY_ERROR:
            where, message = first["ctx"]["where"], first["ctx"]["message"]
        raise ConfigError(f"topology file {path}: {where}: {message}") from exc
    return topology.with_commands_in(path.resolve().parent)
