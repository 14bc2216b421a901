"""Settings every reference service instance has: who it is, where it is reachable, where to register."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from harness import settings as defaults
from harness.settings import ClientSettings

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
TOKEN_MIN_LENGTH = 16
TOKEN_MAX_LENGTH = 512


def _token_text(token: SecretStr) -> SecretStr:
    """A token travels in an HTTP header: printable ASCII, no spaces; long enough not to be guessed."""
    secret = token.get_secret_value()
    if not TOKEN_MIN_LENGTH <= len(secret) <= TOKEN_MAX_LENGTH or not all("!" <= c <= "~" for c in secret):
        raise ValueError(
            f"a registry token is {TOKEN_MIN_LENGTH} to {TOKEN_MAX_LENGTH} printable ASCII characters "
            'without spaces; make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return token


# The registry's write token (like Consul's ACL token); SecretStr keeps it out of reprs and logs.
RegistryToken = Annotated[SecretStr, AfterValidator(_token_text)]


class ServiceSettings(BaseModel):
    """Base of each service's settings model; services add their own fields.

    ``client_defaults`` names the services this one calls and its client settings towards each;
    ``clients`` holds what the topology (or a ``--config`` file) changes, table by table.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    client_defaults: ClassVar[Mapping[str, ClientSettings]] = {}

    instance_id: str = Field(min_length=1, max_length=63, pattern=NAME_PATTERN)
    advertise_host: str = "127.0.0.1"
    advertise_port: int = Field(default=0, ge=0, le=65535)
    bound_port: int = Field(
        default=0, ge=0, le=65535, description="The port the instance listens on (0: same as advertised)."
    )
    advertise_health: bool = Field(
        default=False,
        description="Register the advertised address as the health URL, so the registry's checks cross "
        "whatever is in front (a fault proxy); by default they reach the instance directly.",
    )
    registry_url: str | None = None
    registry_token: RegistryToken | None = Field(default=None, description="Sent with registry writes.")
    health_check: bool = Field(
        default=True,
        description="Register a health URL for the registry to check; off: listed while it heartbeats.",
    )
    heartbeat_interval: float = Field(default=defaults.HEARTBEAT_INTERVAL, gt=0)
    ttl: float | None = Field(default=None, gt=0)
    weight: int = Field(default=defaults.WEIGHT, ge=1, le=defaults.MAX_WEIGHT)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    event_log: Path | None = None
    test_mode: bool = Field(default=False, description="Serve the provider-state route of contract tests.")
    clients: dict[str, ClientSettings] = Field(
        default_factory=dict, description="Per target service, what changes from ``client_defaults``."
    )

    @model_validator(mode="after")
    def _known_clients(self) -> ServiceSettings:
        for target in self.clients:
            if target not in self.client_defaults:
                calls = ", ".join(sorted(self.client_defaults)) or "no other service"
                raise ValueError(f"clients.{target}: this service calls {calls}, not {target!r}")
            try:
                self.client(target).check()
            except ValueError as exc:
                raise ValueError(f"clients.{target}: {exc}") from exc
        return self

    def client(self, target: str) -> ClientSettings:
        """The whole client table towards ``target``: the defaults with what ``clients`` changes."""
        return self.client_defaults[target].merged(self.clients.get(target))
