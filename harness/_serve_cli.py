"""``harness serve <service>``: run one reference service instance in the foreground.

The stack starts each instance this way as a child process; a user can too, to poke at one service.
An instance's settings come from, in this order: its flags, their ``HARNESS_*`` environment variables,
its ``--config`` file (what the stack writes from the topology, ``harness.settings.InstanceConfig``),
and the defaults of ``harness.settings``. A flag left out is never a default that hides the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from fastapi import FastAPI

from harness import settings as defaults
from harness._cli_common import build_settings, ensure_loopback, given
from harness.discovery import REGISTRY_TOKEN_ENV
from harness.errors import ConfigError
from harness.settings import ClientSettings, InstanceConfig, OrchestratorOptions, UsersOptions

ORCHESTRATOR = OrchestratorOptions()


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
                 help="Write the bound port here as soon as the socket listens (readiness: GET /health)."),
    click.option("--event-log", type=click.Path(dir_okay=False, path_type=Path),
                 help="Append JSON-lines events to this file."),
    click.option("--allow-remote", is_flag=True, help="Allow binding a non-loopback address."),
)  # fmt: skip


def knob(name: str, default: object, **attrs: Any) -> Callable[[Any], Any]:
    """A flag for one of the instance's settings, also read from ``HARNESS_<NAME>``. When neither is given
    the ``--config`` file's value applies, else ``default`` (the settings default: shown, never passed)."""
    envvar = "HARNESS_" + name.removeprefix("--").replace("-", "_").upper()
    return click.option(name, default=default, show_default=True, envvar=envvar, show_envvar=True, **attrs)


def instance_options(kind: str) -> Callable[[Any], Any]:
    """Flags every registering service instance has."""
    return _options(
        server_options,
        click.option("--instance-id", default=f"{kind}-1", show_default=True,
                     help="Unique id of this instance."),
        click.option("--registry", "registry_url", help="Registry URL to register with and heartbeat to."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="JSON file of settings (what `harness up` writes from the topology for each "
                          "instance); flags and HARNESS_* variables override it."),
        knob("--heartbeat-interval", defaults.HEARTBEAT_INTERVAL, type=click.FloatRange(min=0.01),
             help="Seconds between heartbeats."),
        click.option("--ttl", type=click.FloatRange(min=0.1),
                     help="TTL to ask the registry for (default: its own)."),
        knob("--weight", defaults.WEIGHT, type=click.IntRange(1, defaults.MAX_WEIGHT),
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
max_in_flight_option = knob(
    "--max-in-flight", defaults.MAX_IN_FLIGHT, type=click.IntRange(min=1),
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
    config_file: Path | None,
    client_overrides: Mapping[str, ClientSettings] | None = None,
    **flags: Any,
) -> None:
    """Validate the flags, bind, and run an instance that advertises the port it actually bound.

    ``client_overrides`` are client tables that flags imply, laid over the file's (flags win).
    """
    from reference_services.common import run_app

    ensure_loopback(host, allow_remote=allow_remote, what="--host")
    values = instance_values(config_file, given(flags), client_overrides or {})
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


def instance_values(
    config_file: Path | None, flags: Mapping[str, Any], client_overrides: Mapping[str, ClientSettings]
) -> dict[str, Any]:
    """Settings values by precedence: the flags given (or their environment variables) over the file."""
    values = InstanceConfig.read(config_file).settings_values() if config_file is not None else {}
    clients: dict[str, ClientSettings] = dict(values.get("clients", {}))
    for target, table in client_overrides.items():
        clients[target] = clients[target].merged(table) if target in clients else table
    if clients:
        values["clients"] = clients
    return {**values, **flags}


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
    default=defaults.REGISTRY_TTL,
    type=click.FloatRange(min=0.1),
    show_default=True,
    help="Seconds an instance stays registered without a heartbeat.",
)
@click.option(
    "--check-interval",
    default=defaults.REGISTRY_CHECK_INTERVAL,
    type=click.FloatRange(min=0.05),
    show_default=True,
    help="Seconds between active health checks of each instance.",
)
@click.option(
    "--check-timeout",
    default=defaults.REGISTRY_CHECK_TIMEOUT,
    type=click.FloatRange(min=0.01),
    show_default=True,
    help="Seconds an active health check may take.",
)
@click.option(
    "--check-failures",
    default=defaults.REGISTRY_CHECK_FAILURES,
    type=click.IntRange(min=1),
    show_default=True,
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
@knob("--outbox-interval", UsersOptions().outbox_interval, type=click.FloatRange(min=0.01),
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
@knob(
    "--recovery-interval",
    ORCHESTRATOR.recovery_interval,
    type=click.FloatRange(min=0.01),
    help="Seconds between re-drives of unfinished sagas.",
)
@knob(
    "--saga-deadline",
    ORCHESTRATOR.saga_deadline,
    type=click.FloatRange(min=0.01),
    help="Seconds POST /orders waits for the saga's outcome before answering 202.",
)
@knob(
    "--step-deadline",
    ORCHESTRATOR.step_deadline,
    type=click.FloatRange(min=0.01),
    help="Seconds a step may go without a clear answer: before the pivot the saga then compensates; at "
    "and after it the step is retried until done.",
)
@knob(
    "--call-timeout",
    defaults.CLIENT_DEFAULTS["orchestrator"]["users"].attempt_timeout,
    type=click.FloatRange(min=0.01),
    help="Seconds per attempt towards users and notifications; a call's deadline is three times this "
    "(sets attempt_timeout and deadline of both clients).",
)
def serve_orchestrator(call_timeout: float, **flags: Any) -> None:
    """The order saga orchestrator with its durable saga log."""
    from reference_services.orchestrator import OrchestratorSettings, create_app

    overrides = {}
    if "call_timeout" in given({"call_timeout": call_timeout}):  # its default must not hide the file's
        timeouts = ClientSettings(attempt_timeout=call_timeout, deadline=call_timeout * 3)
        overrides = dict.fromkeys(OrchestratorSettings.client_defaults, timeouts)
    serve_instance(OrchestratorSettings, create_app, client_overrides=overrides, **flags)
