"""Helpers the CLI commands share: loopback guard and settings validation with one-line errors."""

from __future__ import annotations

from typing import Any, TypeVar

import click
import pydantic

from harness._net import is_loopback_host, is_loopback_url
from harness.errors import ConfigError, HarnessError

_Settings = TypeVar("_Settings", bound=pydantic.BaseModel)


def ensure_loopback(host: str, *, allow_remote: bool, what: str) -> None:
    """Refuse a non-loopback address (a host or a URL) unless the user opted in explicitly."""
    loopback = is_loopback_url(host) if "://" in host else is_loopback_host(host)
    if not (allow_remote or loopback):
        raise ConfigError(f"{what} {host!r} is not a loopback address; pass --allow-remote to use it anyway")


def build_settings(model: type[_Settings], **values: Any) -> _Settings:
    """Validate flags into a settings model; a bad value becomes one readable ConfigError line."""
    try:
        return model(**values)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"invalid {where.replace('_', '-')}: {first['msg']}") from exc


class HarnessGroup(click.Group):
    """Turns every HarnessError into one readable line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            click.echo(f"harness: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
