"""Settings every reference service instance has: who it is, where it is reachable, where to register."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

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
    """Base of each service's settings model; services add their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    heartbeat_interval: float = Field(default=1.0, gt=0)
    ttl: float | None = Field(default=None, gt=0)
    weight: int = Field(default=1, ge=1, le=1000)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    event_log: Path | None = None
    test_mode: bool = Field(default=False, description="Serve the provider-state route of contract tests.")
