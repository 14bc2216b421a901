"""The ``harness`` command: a thin layer that parses, calls one library function, renders and exits.

Exit codes: 0 ok, 1 a check failed, 2 usage or configuration error, 3 environment unavailable.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, TypeVar

import click
import pydantic

from harness.errors import CheckFailed, ConfigError, HarnessError

_Settings = TypeVar("_Settings", bound=pydantic.BaseModel)


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


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resilience-harness", prog_name="harness")
def cli() -> None:
    """Contract and chaos testing harness for microservices."""


@cli.command()
@click.option(
    "--instances",
    default=3,
    show_default=True,
    type=click.IntRange(2, 20),
    help="Echo instances to start behind the registry.",
)
@click.option(
    "--calls",
    default=30,
    show_default=True,
    type=click.IntRange(3, 10_000),
    help="Calls per phase of the scenario.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where logs and event files go (default: a fresh temporary folder).",
)
def demo(instances: int, calls: int, workdir: Path | None) -> None:
    """Start a registry and echo instances, and show discovery, balancing and breakers at work."""
    from harness.demo import DemoSettings, run_demo

    report = run_demo(DemoSettings(instances=instances, calls=calls, workdir=workdir), progress=click.echo)
    click.echo("\nchecks:")
    for check in report.checks:
        mark = click.style("PASS", fg="green") if check.passed else click.style("FAIL", fg="red")
        click.echo(f"  {mark}  {check.name}: {check.detail}")
    click.echo(f"\nlogs and events: {report.workdir}")
    if not report.passed:
        raise CheckFailed(f"{sum(not c.passed for c in report.checks)} of {len(report.checks)} checks failed")


@cli.group()
def serve() -> None:
    """Run one reference service in the foreground (the stack starts these as child processes)."""


def _server_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
            click.option(
                "--port",
                default=0,
                show_default=True,
                type=click.IntRange(0, 65535),
                help="Port to bind; 0 picks a free one.",
            ),
            click.option(
                "--port-file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Write the bound port here once the server accepts connections.",
            ),
            click.option(
                "--event-log",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Append JSON-lines events to this file.",
            ),
            click.option("--allow-remote", is_flag=True, help="Allow binding a non-loopback address."),
        ]
    ):
        func = option(func)
    return func


@serve.command("registry")
@_server_options
@click.option(
    "--ttl",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds an instance stays registered without a heartbeat.",
)
@click.option(
    "--check-interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds between active health checks of each instance.",
)
@click.option(
    "--check-timeout",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds an active health check may take.",
)
@click.option(
    "--check-failures",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Consecutive failed health checks before an instance is evicted.",
)
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
    settings = build_settings(
        RegistrySettings,
        default_ttl=ttl,
        check_interval=check_interval,
        check_timeout=check_timeout,
        check_failures=check_failures,
        event_log=event_log,
    )
    run_app(lambda _port: create_app(settings), host=host, port=port, port_file=port_file)


@serve.command("echo")
@_server_options
@click.option("--instance-id", default="echo-1", show_default=True, help="Unique id of this instance.")
@click.option("--service", default="echo", show_default=True, help="Service name to register under.")
@click.option("--registry", "registry_url", help="Registry URL to register with and heartbeat to.")
@click.option("--heartbeat-interval", default=1.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--ttl", type=click.FloatRange(min=0.1), help="TTL to ask the registry for (default: its own).")
@click.option("--weight", default=1, show_default=True, type=click.IntRange(1, 1000))
def serve_echo(
    host: str,
    port: int,
    port_file: Path | None,
    event_log: Path | None,
    allow_remote: bool,
    instance_id: str,
    service: str,
    registry_url: str | None,
    heartbeat_interval: float,
    ttl: float | None,
    weight: int,
) -> None:
    """A backend whose status, latency and health can be switched at run time (PUT /admin/faults)."""
    from reference_services.common import run_app
    from reference_services.echo import EchoSettings, create_app

    ensure_loopback(host, allow_remote=allow_remote, what="--host")
    settings = build_settings(
        EchoSettings,
        instance_id=instance_id,
        service=service,
        advertise_host=host,
        registry_url=registry_url,
        heartbeat_interval=heartbeat_interval,
        ttl=ttl,
        weight=weight,
        event_log=event_log,
    )

    def factory(bound_port: int) -> Any:
        return create_app(settings.model_copy(update={"advertise_port": bound_port}))

    run_app(factory, host=host, port=port, port_file=port_file)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="harness")
