"""Every default of the stack, declared once, and the typed settings the topology and the services share.

A value that can come from several places is taken in this order: a flag, then the environment
(``HARNESS_*``), then the topology file (which the stack hands each instance as its ``--config`` file,
an ``InstanceConfig``), then the default declared here. The topology, ``harness serve`` and the
services' settings models all read their defaults from this module, so they cannot drift apart.

A client table (``ClientSettings``) may be partial: it names only what it changes, and is laid over
the caller's defaults (``CLIENT_DEFAULTS``) with ``merged``. Each table is checked field by field when
read and as a whole (``check``: the breaker, retry and discovery rules) once merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from harness.discovery import DiscoveryRefresh, ServiceClientConfig
from harness.errors import ConfigError
from harness.faults import MonkeyConfig
from harness.resilience import BALANCER_NAMES, BreakerConfig, RetryPolicy

# -- the registry --------------------------------------------------------------------------------
REGISTRY_TTL = 5.0
"""Seconds an instance stays registered without a heartbeat (unless it asks for another TTL)."""
REGISTRY_CHECK_INTERVAL = 1.0
REGISTRY_CHECK_TIMEOUT = 1.0
REGISTRY_CHECK_FAILURES = 3

# -- every service instance ----------------------------------------------------------------------
HEARTBEAT_INTERVAL = 1.0
WEIGHT = 1
MAX_WEIGHT = 1000
MAX_IN_FLIGHT = 64

# The defaults of the client building blocks are the dataclasses' own; read here, never repeated.
_CLIENT = ServiceClientConfig()
_BREAKER = BreakerConfig()
_RETRY = RetryPolicy()
_DISCOVERY = DiscoveryRefresh()


class _Table(BaseModel):
    """A table of a TOML or JSON settings file: unknown keys and coerced types are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BreakerSettings(_Table):
    """The per-instance circuit breaker of one client (see ``harness.resilience.BreakerConfig``)."""

    window_size: int = Field(_BREAKER.window_size, ge=1, description="Calls (count window) or seconds.")
    window_type: Literal["count", "time"] = Field(_BREAKER.window_type)
    minimum_calls: int = Field(_BREAKER.minimum_calls, ge=1, description="No verdict before this many.")
    failure_rate_threshold: float = Field(_BREAKER.failure_rate_threshold, gt=0, le=1)
    slow_call_duration: float | None = Field(_BREAKER.slow_call_duration, gt=0, allow_inf_nan=False)
    slow_call_rate_threshold: float = Field(_BREAKER.slow_call_rate_threshold, gt=0, le=1)
    open_duration: float = Field(_BREAKER.open_duration, gt=0, allow_inf_nan=False)
    half_open_calls: int = Field(_BREAKER.half_open_calls, ge=1)

    def to_config(self) -> BreakerConfig:
        return BreakerConfig(**self.model_dump())


class RetrySettings(_Table):
    """How many attempts a call gets and the backoff between them (full jitter)."""

    max_attempts: int = Field(_RETRY.max_attempts, ge=1, description="The first attempt included.")
    base_delay: float = Field(_RETRY.base_delay, ge=0, allow_inf_nan=False)
    max_delay: float = Field(_RETRY.max_delay, ge=0, allow_inf_nan=False)

    def to_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts, base_delay=self.base_delay, max_delay=self.max_delay
        )


class RetryBudgetSettings(_Table):
    """Retries allowed: ``ratio`` of the calls of the last 10 s, plus ``min_per_second``."""

    ratio: float = Field(_CLIENT.retry_budget_ratio, ge=0, allow_inf_nan=False)
    min_per_second: float = Field(_CLIENT.retry_budget_min_per_second, ge=0, allow_inf_nan=False)


class DiscoverySettings(_Table):
    """How the caller's cached list of the target's instances follows the registry."""

    watch: bool = Field(_DISCOVERY.watch, description="A blocking query always open: changes as they happen.")
    refresh_interval: float = Field(
        _DISCOVERY.interval,
        ge=0,
        allow_inf_nan=False,
        description="Without watch: seconds between lookups; 0: the first answer is kept forever.",
    )

    def to_refresh(self) -> DiscoveryRefresh:
        return DiscoveryRefresh(watch=self.watch, interval=self.refresh_interval)


class ChaosSettings(_Table):
    """A ChaosMonkey (``harness.faults.ChaosMonkey``) under the caller's calls to this target:
    ``chaos = { failure_rate = 0.2, latency_range = [10, 50], error = "503", retry_after = 1, seed = 7 }``."""

    failure_rate: float = Field(0.0, ge=0, le=1, description="Probability that a call fails.")
    latency_range: tuple[float, float] = Field(
        (0.0, 0.0), description="Milliseconds: every call first waits a uniform draw from [low, high]."
    )
    error: str = Field(
        "503", description="A failure is this status (400 to 599), or connect_error, disconnect, timeout."
    )
    retry_after: float | None = Field(None, ge=0, allow_inf_nan=False, description="Seconds, on a status.")
    seed: int | None = Field(None, description="The same seed, the same sequence of draws.")

    @field_validator("latency_range", mode="before")
    @classmethod
    def _pair(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value  # TOML and JSON give arrays

    @field_validator("error", mode="before")
    @classmethod
    def _status_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> ChaosSettings:
        self.to_config()  # ValueError naming the key: latency_range out of order, an unknown error
        return self

    def to_config(self) -> MonkeyConfig:
        """The monkey's configuration; ValueError naming the key when the table contradicts itself."""
        return MonkeyConfig(**self.model_dump())


class ClientSettings(_Table):
    """One caller's ServiceClient towards one target service: ``[services.<caller>.clients.<target>]``."""

    balancer: str = Field(_CLIENT.balancer, description=f"One of {', '.join(BALANCER_NAMES)}.")
    breaker: BreakerSettings | None = Field(
        default_factory=BreakerSettings, description="A table, or false: no breaker at all."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings)
    retry_budget: RetryBudgetSettings = Field(default_factory=RetryBudgetSettings)
    attempt_timeout: float = Field(_CLIENT.attempt_timeout, gt=0, allow_inf_nan=False)
    deadline: float = Field(_CLIENT.deadline, gt=0, allow_inf_nan=False, description="Of a call, retries in.")
    max_concurrent: int = Field(_CLIENT.max_concurrent, ge=1, description="Bulkhead: calls in flight.")
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    chaos: ChaosSettings | None = Field(None, description="Faults injected on the client side (none: off).")

    @field_validator("balancer")
    @classmethod
    def _known_balancer(cls, name: str) -> str:
        if name not in BALANCER_NAMES:
            raise ValueError(f"unknown balancer {name!r}; one of {', '.join(BALANCER_NAMES)}")
        return name

    @field_validator("breaker", mode="before")
    @classmethod
    def _breaker_table_or_false(cls, value: object) -> object:
        if value is True:
            raise ValueError(
                "breaker = true means nothing: give a table (its settings) or false (no breaker)"
            )
        return None if value is False else value

    @field_serializer("breaker")
    def _off_is_false(self, breaker: BreakerSettings | None) -> BreakerSettings | Literal[False]:
        return False if breaker is None else breaker

    def merged(self, over: ClientSettings | None) -> ClientSettings:
        """``over`` laid on this table: what ``over`` sets wins, nested tables key by key."""
        if over is None:
            return self
        merged = _merge(self.model_dump(exclude_unset=True), over.model_dump(exclude_unset=True))
        return ClientSettings.model_validate(merged)

    def to_config(self) -> ServiceClientConfig:
        """The ServiceClient configuration; ValueError when the table contradicts itself."""
        return ServiceClientConfig(
            balancer=self.balancer,
            breaker=None if self.breaker is None else self.breaker.to_config(),
            retry=self.retry.to_policy(),
            retry_budget_ratio=self.retry_budget.ratio,
            retry_budget_min_per_second=self.retry_budget.min_per_second,
            attempt_timeout=self.attempt_timeout,
            deadline=self.deadline,
            max_concurrent=self.max_concurrent,
            chaos=None if self.chaos is None else self.chaos.to_config(),
        )

    def check(self) -> None:
        """Raise ValueError naming the first rule the whole table breaks (after merging)."""
        self.to_config()
        self.discovery.to_refresh()


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in over.items()}}
    return over


# The saga's calls: a breaker that opens after half of 20 calls failed (10 at least) and probes after
# 2 s; three attempts with short backoff; a deadline of three attempt timeouts.
_SAGA_CLIENT = ClientSettings(
    breaker=BreakerSettings(window_size=20, minimum_calls=10, failure_rate_threshold=0.5, open_duration=2.0),
    retry=RetrySettings(max_attempts=3, base_delay=0.05, max_delay=0.5),
    attempt_timeout=2.0,
    deadline=6.0,
)
# The users outbox relay retries on its own schedule, so one call gets a short deadline and one retry;
# the lease on a claimed row (15 s) outlasts the deadline, so no other instance picks up a row in flight.
_RELAY_CLIENT = ClientSettings(attempt_timeout=2.0, deadline=5.0, retry=RetrySettings(max_attempts=2))

CLIENT_DEFAULTS: Mapping[str, Mapping[str, ClientSettings]] = {
    "users": {"notifications": _RELAY_CLIENT},
    "notifications": {},
    "orchestrator": {"users": _SAGA_CLIENT, "notifications": _SAGA_CLIENT},
}
"""For each reference service, the services it calls and its client defaults towards each."""


# -- each reference service's own knobs (``[services.<kind>.options]``) ------------------------------
class _Options(BaseModel):
    """A service's own knobs, mixed into its settings model (which reads flags as text: not strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UsersOptions(_Options):
    outbox_interval: float = Field(
        default=0.2, gt=0, allow_inf_nan=False, description="Seconds between outbox relay rounds."
    )


class NotificationsOptions(_Options):
    pass


STEP_ATTEMPTS_REPLACED = (
    "replaced by step_deadline (seconds): a failure to deliver is retried until the step's deadline "
    "before the pivot (then compensated) and until done after it; set step_deadline instead"
)


class OrchestratorOptions(_Options):
    recovery_interval: float = Field(
        default=1.0, gt=0, allow_inf_nan=False, description="Seconds between re-drives of unfinished sagas."
    )
    saga_deadline: float = Field(
        default=10.0, gt=0, allow_inf_nan=False, description="How long POST /orders waits for the outcome."
    )
    step_deadline: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a step may go without a clear answer: before the pivot the saga then "
        "compensates; at and after the pivot the step is logged overdue and retried until done.",
    )
    # Replaced by step_deadline (a saga no longer stops after a count of failures to deliver). Kept as a
    # field only so that giving it says so; never dumped, so no instance file carries it.
    step_attempts: int | None = Field(default=None, exclude=True, description=STEP_ATTEMPTS_REPLACED)

    @field_validator("step_attempts", mode="before")
    @classmethod
    def _step_attempts_replaced(cls, value: object) -> None:
        raise ValueError(STEP_ATTEMPTS_REPLACED)


SERVICE_OPTIONS: Mapping[str, type[_Options]] = {
    "users": UsersOptions,
    "notifications": NotificationsOptions,
    "orchestrator": OrchestratorOptions,
}

OptionValue = int | float | bool | str


class InstanceConfig(_Table):
    """What the stack hands one service instance, as the JSON file behind ``--config``.

    Every key is optional: what is absent (or null) leaves the service's default; a flag overrides
    what is here. ``options`` are the service's own settings (validated by its settings model).
    """

    heartbeat_interval: float | None = Field(None, gt=0, allow_inf_nan=False)
    ttl: float | None = Field(None, gt=0, allow_inf_nan=False, description="TTL asked of the registry.")
    weight: int | None = Field(None, ge=1, le=MAX_WEIGHT)
    max_in_flight: int | None = Field(None, ge=1)
    health_check: bool | None = Field(None, description="Register a health URL; false: TTL only.")
    advertise_health: bool | None = None
    clients: dict[str, ClientSettings] = Field(default_factory=dict)
    options: dict[str, OptionValue] = Field(default_factory=dict)

    def settings_values(self) -> dict[str, Any]:
        """The keyword values of a service settings model this file sets."""
        fields = ("heartbeat_interval", "ttl", "weight", "max_in_flight", "health_check", "advertise_health")
        values: dict[str, Any] = {
            name: getattr(self, name) for name in fields if getattr(self, name) is not None
        }
        if self.clients:
            values["clients"] = dict(self.clients)
        return {**values, **self.options}

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> InstanceConfig:
        """The file's configuration; a missing or bad file is one ConfigError naming it and the key."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            if first["type"] == "json_invalid":
                raise ConfigError(f"config file {path} is not valid JSON: {first['msg']}") from exc
            raise ConfigError(f"config file {path}: {where}: {first['msg']}") from exc
