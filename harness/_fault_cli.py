"""``harness fault``: faults by hand, from a terminal, on the instances of a running ``harness up`` (found
through its workdir) or on the proxies of any Toxiproxy at ``TOXIPROXY_URL``. A fault held ``--for`` a
while ends on time even if the command is killed: it says who ends it then (the fault proxy itself, the
stack's watch, or, with neither, only this command)."""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TypeVar

import click

from harness._up_cli import DEFAULT_WORKDIR
from harness.errors import ConfigError, EnvironmentUnavailable
from harness.faults import ActiveFault, FaultConsole, FaultTarget, FaultWindow, Stream
from harness.faults._console import EndedBy, parse_duration, toxic_attributes, toxic_kinds

T = TypeVar("T")

_workdir = click.option(
    "--workdir",
    default=DEFAULT_WORKDIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The workdir of the running `harness up`; the fault ledger and events go here too.",
)
_allow_remote = click.option(
    "--allow-remote", is_flag=True, help="Allow a TOXIPROXY_URL that is not on loopback."
)
_for = click.option(
    "--for",
    "hold_for",
    metavar="DURATION",
    help="Remove the fault after this long (30s, 1.5m, 500ms; at most a week), or on Ctrl-C; a countdown "
    "meanwhile. It ends on time even if this command is killed (the fault proxy, or the stack, ends it).",
)


def _target(workdir: Path, *, allow_remote: bool) -> FaultTarget:
    """The fault proxy of the stack running in ``workdir``, else the Toxiproxy at TOXIPROXY_URL."""
    from harness._cli_common import ensure_loopback
    from harness.stack import StackState

    env = os.environ.get("TOXIPROXY_URL")
    state = StackState.read(workdir.resolve())
    if state is not None:
        embedded = next((i for i in state.instances if i.name == "toxiproxy"), None)
        url = embedded.url if embedded is not None else env
        if url is None:
            raise ConfigError(f"the stack in {workdir} runs without fault proxies")
        names = tuple(i.name for i in state.instances if i.proxy)
        return FaultTarget(url, workdir, names, where=f"the stack in {workdir}", watched=True)
    if env:
        ensure_loopback(env, allow_remote=allow_remote, what="TOXIPROXY_URL")
        return FaultTarget(env, workdir, None, where=f"TOXIPROXY_URL={env}")
    raise EnvironmentUnavailable(
        f"no stack is running in {workdir} and TOXIPROXY_URL is not set: start one with `harness up` "
        "(or pass its --workdir), or point TOXIPROXY_URL at a Toxiproxy"
    )


def _run(workdir: Path, allow_remote: bool, action: Callable[[FaultConsole], T]) -> T:
    console = FaultConsole(_target(workdir, allow_remote=allow_remote))
    try:
        return action(console)
    finally:
        console.close()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM are noted, not raised, inside; one that came is raised on the way out."""
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if noted:
        raise KeyboardInterrupt


def _apply(
    console: FaultConsole, apply: Callable[[], tuple[FaultWindow, str]], seconds: float | None
) -> None:
    """Apply a fault (``apply`` returns its window and what to call it); with --for, hold it, then remove it.

    Ctrl-C and SIGTERM wait while a held fault is being applied and are raised once this knows its window,
    so whenever they come, the fault is removed (never an "Aborted!" that leaves it behind)."""
    if seconds is None:
        apply()
        return
    window: FaultWindow | None = None
    description = ""
    with _sigterm_interrupts():
        try:
            with _interrupts_deferred():
                window, description = apply()
            _hold(console, window, description, seconds)
        except KeyboardInterrupt:
            if window is None:
                raise
            console.release(window, reason="interrupted")
            click.echo(f"\ninterrupted: removed {description}")


_ENDED_BY = {
    EndedBy.PROXY: "it ends on time even if this command is killed: the fault proxy ends it itself",
    EndedBy.WATCH: "it ends on time even if this command is killed: this Toxiproxy cannot end it itself, "
    "so the stack's watch ends it (from the fault ledger)",
    EndedBy.COMMAND: "warning: this Toxiproxy cannot end it itself and no stack watches it: if this command "
    "is killed, the fault stays until the next `harness fault` command after its time",
}


def _hold(console: FaultConsole, window: FaultWindow, description: str, seconds: float) -> None:
    """Say who ends the fault should this command die, count down, then remove."""
    tty = sys.stdout.isatty()

    def tick(left: float) -> None:
        if tty:
            click.echo(f"\r  {description}: {math.ceil(left)}s left ", nl=False)

    ended_by = console.ended_by.get(window.name)
    if ended_by is not None:
        click.echo(_ENDED_BY[ended_by], err=ended_by is EndedBy.COMMAND)
    click.echo(f"holding for {seconds:g}s; Ctrl-C removes it now")
    console.hold(window, seconds, tick=tick)
    click.echo(f"{chr(10) if tty else ''}time is up: removed {description}")


@click.group()
def fault() -> None:
    """Add, list and remove faults on the instances of a running stack (or any Toxiproxy), by name.

    Toxics: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, and the HTTP toxics
    http_error and http_latency (per request; only the harness's embedded fault proxy has them).
    """


@fault.command()
@click.argument("instance")
@click.argument("toxic", type=click.Choice(toxic_kinds()), metavar="TOXIC")
@click.argument("attributes", nargs=-1, metavar="[ATTR=VALUE]...")
@click.option(
    "--toxicity",
    default=1.0,
    show_default=True,
    type=float,
    help="Probability per connection (TCP toxics) or per request (HTTP toxics).",
)
@click.option(
    "--stream",
    type=click.Choice([s.value for s in Stream]),
    help="Default: upstream for http_error and http_latency, downstream for the others.",
)
@click.option("--name", help="The toxic's name (default: TOXIC-INSTANCE-<random>).")
@_for
@_workdir
@_allow_remote
def add(
    instance: str,
    toxic: str,
    attributes: tuple[str, ...],
    toxicity: float,
    stream: str | None,
    name: str | None,
    hold_for: str | None,
    workdir: Path,
    allow_remote: bool,
) -> None:
    """Add TOXIC with its attributes to INSTANCE's proxy, until removed (or for --for).

    \b
    harness fault add users-2 http_error status=503 retry_after=1 --toxicity 0.3
    harness fault add users-1 http_latency latency_min=50 latency_max=200 path_prefix=/users
    harness fault add users-3 latency latency=300 jitter=50 --for 30s
    """
    values = toxic_attributes(toxic, attributes)
    seconds = parse_duration(hold_for) if hold_for is not None else None

    def add_one(console: FaultConsole) -> tuple[FaultWindow, str]:
        window = console.add(instance, toxic, values, toxicity=toxicity,
                             stream=Stream(stream) if stream else None, name=name,
                             hold_for=seconds)  # fmt: skip
        description = f"{window.fault.describe()} ({window.fault.stream.value})"
        click.echo(f"added {description} as {window.name}")
        return window, description

    _run(workdir, allow_remote, lambda console: _apply(console, lambda: add_one(console), seconds))


@fault.command(name="list")
@_workdir
@_allow_remote
def list_faults(workdir: Path, allow_remote: bool) -> None:
    """Every toxic and disabled proxy on the instances now (* : added with `harness fault`), with the time
    left of those held for a duration; those whose time is up are removed first."""

    def listed(console: FaultConsole) -> tuple[list[str], list[ActiveFault]]:
        return console.end_expired(), console.faults()

    ended, faults = _run(workdir, allow_remote, listed)
    for line in ended:
        click.echo(f"removed {line}: its time was up")
    if not faults:
        click.echo("no faults")
        return
    click.echo(f"  {'instance':<18} {'name':<34} fault")
    for item in faults:
        mark = "*" if item.mine else " "
        ending = f"  ({item.ending()})" if item.ends_in is not None else ""
        click.echo(f"{mark} {item.instance:<18} {item.name:<34} {item.describe()}{ending}")


@fault.command()
@click.argument("instance")
@click.argument("name", required=False)
@_workdir
@_allow_remote
def remove(instance: str, name: str | None, workdir: Path, allow_remote: bool) -> None:
    """Remove the fault NAME from INSTANCE (default: the newest one there)."""
    for removed in _run(workdir, allow_remote, lambda console: console.remove(instance, name)):
        click.echo(f"removed {removed}")


@fault.command()
@click.argument("instance", required=False)
@_workdir
@_allow_remote
def clear(instance: str | None, workdir: Path, allow_remote: bool) -> None:
    """Remove every fault on INSTANCE (default: on every instance), whoever added it."""
    removed = _run(workdir, allow_remote, lambda console: console.clear(instance))
    for line in removed:
        click.echo(f"removed {line}")
    click.echo(f"{len(removed)} fault(s) removed")


@fault.command()
@click.argument("instance")
@_for
@_workdir
@_allow_remote
def down(instance: str, hold_for: str | None, workdir: Path, allow_remote: bool) -> None:
    """Partition INSTANCE: its proxy refuses connections and closes open ones, until `up` (or --for)."""
    seconds = parse_duration(hold_for) if hold_for is not None else None

    def take_down(console: FaultConsole) -> tuple[FaultWindow, str]:
        window = console.down(instance, hold_for=seconds)
        click.echo(f"{instance} is down ({window.name})")
        return window, f"{instance} down"

    _run(workdir, allow_remote, lambda console: _apply(console, lambda: take_down(console), seconds))


@fault.command()
@click.argument("instance")
@_workdir
@_allow_remote
def up(instance: str, workdir: Path, allow_remote: bool) -> None:
    """End a partition: INSTANCE's proxy accepts connections again."""
    changed = _run(workdir, allow_remote, lambda console: console.up(instance))
    click.echo(f"{instance} is up" if changed else f"{instance} was not down")
