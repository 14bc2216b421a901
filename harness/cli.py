"""The ``harness`` command: a thin layer that parses, calls one library function, renders and exits.

Exit codes: 0 ok, 1 a check failed, 2 usage or configuration error, 3 environment unavailable.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import click

from harness.errors import ConfigError, HarnessError


def ensure_loopback(host: str, *, allow_remote: bool, what: str) -> None:
    """Refuse a non-loopback address unless the user opted in explicitly."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"{what} {host!r} is not a loopback address; pass --allow-remote to use it anyway")


class HarnessGroup(click.Group):
    """Turns every HarnessError into one readable line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            click.echo(f"harness: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resilience-harness", prog_name="harness")
def cli() -> None:
    """Contract and chaos testing harness for microservices."""


@cli.group()
def serve() -> None:
    """Run one reference service in the foreground (the stack starts these as child processes)."""


def _server_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
            click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
                         help="Port to bind; 0 picks a free one."),
            click.option("--port-file", type=click.Path(dir_okay=False, path_type=Path),
                         help="Write the bound port here once the server accepts connections."),
            click.option("--event-log", type=click.Path(dir_okay=False, path_type=Path),
                         help="Append JSON-lines events to this file."),
            click.option("--allow-remote", is_flag=True, help="Allow binding a non-loopback address."),
        ]
    ):
        func = option(func)
    return func


@serve.command("registry")
@_server_options
@click.option("--ttl", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds an instance stays registered without a heartbeat.")
@click.option("--check-interval", default=2.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between active health checks of each instance.")
@click.option("--check-timeout", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds an active health check may take.")
@click.option("--check-failures", default=3, show_default=True, type=click.IntRange(min=1),
              help="Consecutive failed health checks before an instance is evicted.")
def serve_registry(
    host: str,
    port: int,
    port_file: Path | None,
    event_log: Path | None,
    allow_remote: bool,
    ttl: float,
    check_interval: float,
    check_timeout: float,
    check_failures: int,
) -> None:
    """The service registry: register, heartbeat TTL, active health checks, lookup and watch."""
    from reference_services.common import run_app
    from reference_services.registry import RegistrySettings, create_app

    ensure_loopback(host, allow_remote=allow_remote, what="--host")
    settings = RegistrySettings(
        default_ttl=ttl,
        check_interval=check_interval,
        check_timeout=check_timeout,
        check_failures=check_failures,
        event_log=event_log,
    )
    run_app(lambda _port: create_app(settings), host=host, port=port, port_file=port_file)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="harness")
