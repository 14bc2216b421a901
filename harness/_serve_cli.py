"""``harness serve <service>``: run one reference service instance in the foreground.

The stack starts each instance this way as a child process; a user can too, to poke at one service.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from fastapi import FastAPI

from harness._cli_common import build_settings, ensure_loopback
from harness.discovery import REGISTRY_TOKEN_ENV
from harness.errors import ConfigError


@click.group()
def serve() -> None:
    """Run one reference service in the foreground (the stack starts these as child processes)."""


def _options(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


server_options = _options(
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
    click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
                 help="Port to bind; 0 picks a free one."),
    click.option("--port-file", type=click.Path(dir_okay=False, path_type=Path),
                 help="Write the bound port here once the server accepts connections."),
    click.option("--event-log", type=click.Path(dir_okay=False, path_type=Path),
                 help="Append JSON-lines events to this file."),
    click.option("--allow-remote", is_flag=True, help="Allow binding a non-loopback address."),
)  # fmt: skip


def instance_options(kind: str) -> Callable[[Any], Any]:
    """Flags every registering service instance has."""
    return _options(
        server_options,
        click.option("--instance-id", default=f"{kind}-1", show_default=True,
                     help="Unique id of this instance."),
        click.option("--registry", "registry_url", help="Registry URL to register with and heartbeat to."),
        click.option("--heartbeat-interval", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
                     help="Seconds between heartbeats."),
        click.option("--ttl", type=click.FloatRange(min=0.1),
                     help="TTL to ask the registry for (default: its own)."),
        click.option("--weight", default=1, show_default=True, type=click.IntRange(1, 1000),
                     help="Weight for weighted balancers."),
        click.option("--advertise-port", type=click.IntRange(1, 65535),
                     help="Port to register instead of the bound one (e.g. a fault proxy in front)."),
        click.option("--advertise-health", is_flag=True,
                     help="Register the advertised port in the health URL too, so the registry's checks "
                          "cross the proxy in front; by default they reach this instance directly."),
        click.option("--registry-token-file", type=click.Path(dir_okay=False, path_type=Path),
                     help=f"File holding the registry's write token (default: ${REGISTRY_TOKEN_ENV}, "
                          "else none)."),
        click.option("--test-mode", is_flag=True, help="Serve the provider-state route of contract tests."),
    )  # fmt: skip


database_option = click.option(
    "--database",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file (WAL mode).",
)
max_in_flight_option = click.option(
    "--max-in-flight", default=64, show_default=True, type=click.IntRange(min=1),
    help="Requests in flight beyond this are shed with 503 and Retry-After.",
)  # fmt: skip


def serve_instance(
    settings_model: type[Any],
    create_app: Callable[[Any], FastAPI],
    *,
    host: str,
    port: int,
    port_file: Path | None,
    allow_remote: bool,
    **values: Any,
) -> None:
    """Validate the flags, bind, and run an instance that advertises the port it actually bound."""
    from reference_services.common import run_app

    ensure_loopback(host, allow_remote=allow_remote, what="--host")
    if values.get("registry_url"):
        ensure_loopback(values["registry_url"], allow_remote=allow_remote, what="--registry")
    advertise_port = values.pop("advertise_port", None)
    token = registry_token(values.pop("registry_token_file", None))
    settings = build_settings(settings_model, advertise_host=host, registry_token=token, **values)
    run_app(
        lambda bound: create_app(
            settings.model_copy(update={"advertise_port": advertise_port or bound, "bound_port": bound})
        ),
        host=host,
        port=port,
        port_file=port_file,
    )


def registry_token(token_file: Path | None) -> str | None:
    """The registry token: the file's content (one line), else ``$HARNESS_REGISTRY_TOKEN``, else None.

    Never a flag of its own: a command line is visible to every user of the machine in ``ps``.
    """
    if token_file is None:
        return os.environ.get(REGISTRY_TOKEN_ENV) or None
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the registry token file {token_file}: {exc}") from exc
    if not token:
        raise ConfigError(f"the registry token file {token_file} is empty")
    return token


@serve.command("registry")
@server_options
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
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"File holding the token every write must carry (default: ${REGISTRY_TOKEN_ENV}); without "
    "one, any process on this machine may register or deregister instances.",
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
    token_file: Path | None,
) -> None:
    """The service registry: register, heartbeat TTL, active health checks, lookup and watch.

    Writes (register, heartbeat, deregister) need the registry's token when one is configured
    (--token-file or $HARNESS_REGISTRY_TOKEN), sent as X-Registry-Token or Authorization: Bearer;
    reads are open. `harness up` makes a fresh token for every run.
    """
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
        allow_remote=allow_remote,
        token=registry_token(token_file),
    )
    writes = (
        "writes need the token"
        if settings.token is not None
        else f"writes are OPEN to any local process (no --token-file or ${REGISTRY_TOKEN_ENV})"
    )

    def announce(bound: int) -> FastAPI:
        click.echo(f"registry on {host}:{bound}: {writes}", err=True)
        return create_app(settings)

    run_app(announce, host=host, port=port, port_file=port_file)


@serve.command("echo")
@instance_options("echo")
@click.option("--service", default="echo", show_default=True, help="Service name to register under.")
def serve_echo(**flags: Any) -> None:
    """A backend whose status, latency and health can be switched at run time (PUT /admin/faults)."""
    from reference_services.echo import EchoSettings, create_app

    serve_instance(EchoSettings, create_app, **flags)


@serve.command("users")
@instance_options("users")
@database_option
@max_in_flight_option
@click.option("--outbox-interval", default=0.2, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds between outbox relay passes.")  # fmt: skip
def serve_users(**flags: Any) -> None:
    """Users with credit reservations; relays user.created events to notifications (transactional outbox)."""
    from reference_services.users import UsersSettings, create_app

    serve_instance(UsersSettings, create_app, **flags)


@serve.command("notifications")
@instance_options("notifications")
@database_option
@max_in_flight_option
def serve_notifications(**flags: Any) -> None:
    """Notifications, deduplicated by id so redeliveries are harmless."""
    from reference_services.notifications import NotificationsSettings, create_app

    serve_instance(NotificationsSettings, create_app, **flags)


@serve.command("orchestrator")
@instance_options("orchestrator")
@database_option
@max_in_flight_option
@click.option(
    "--recovery-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between re-drives of unfinished sagas.",
)
@click.option(
    "--saga-deadline",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds POST /orders waits for the saga's outcome before answering 202.",
)
@click.option("--call-timeout", default=2.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds per attempt towards users and notifications.")  # fmt: skip
@click.option("--step-attempts", default=30, show_default=True, type=click.IntRange(min=1),
              help="Starts of a step that may not compensate before its saga needs attention.")  # fmt: skip
def serve_orchestrator(**flags: Any) -> None:
    """The order saga orchestrator with its durable saga log."""
    from reference_services.orchestrator import OrchestratorSettings, create_app

    serve_instance(OrchestratorSettings, create_app, **flags)
