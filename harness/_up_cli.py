"""``harness up`` and ``harness status``: the reference stack in the foreground, and a look at it."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click

from harness._cli_common import interruptible
from harness.errors import CheckFailed
from harness.stack import FaultProxyState, InstanceStatus, NoticeKind, Stack, load_topology, read_status
from harness.stack._attention import Attention, healthy_in_registry, open_breakers, read_attention

DEFAULT_WORKDIR = Path(".harness/run")


def _table(stack: Stack) -> None:
    click.echo(f"  {'service':<14} {'instance':<16} {'url':<24} {'reached via proxy':<20} pid")
    for name, process in stack.processes.items():
        via = stack.proxies.get(name, "-")
        click.echo(f"  {stack.kinds[name]:<14} {name:<16} {process.url:<24} {via:<20} {process.pid}")


@dataclass
class _Reported:
    """What the status loop has told already: each crash (per process: the fault proxy is restarted and may
    crash again) and each notice of the fault proxy's supervisor is shown once."""

    crashes: set[tuple[str, int | None]] = field(default_factory=set)
    notices: int = 0


def _status_line(stack: Stack, reported: _Reported) -> str:
    """One compact line: per service running and healthy-in-registry instances, open breakers, the fault proxy
    if not running, orders by state, dead letters; crashes reported once."""
    up: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for name, process in list(stack.processes.items()):
        kind = stack.kinds[name]
        total[kind] += 1
        if process.is_running():
            up[kind] += 1
        elif (name, process.pid) not in reported.crashes and not (
            kind == "toxiproxy" and stack.supervisor is not None  # its supervisor tells, even a quick restart
        ):
            reported.crashes.add((name, process.pid))
            click.echo(f"\n! {name} exited with code {process.returncode}; log: {process.log_path}", err=True)
    healthy = healthy_in_registry(stack.registry_url, timeout=1.0) if up["registry"] else None
    parts = []
    for kind in total:
        listed = (
            ""
            if healthy is None or kind in ("registry", "toxiproxy")
            else f" ({healthy.get(kind, 0)} healthy)"
        )
        parts.append(f"{kind} {up[kind]}/{total[kind]}{listed}")
    parts.extend(_fault_proxy(stack, reported))
    parts.extend(_faults(stack))
    callers = [p.url for kind in ("orchestrator", "users") for p in stack.instances(kind) if p.is_running()]
    breakers = open_breakers(callers, timeout=1.0)
    parts.append("breakers ?" if breakers is None else f"open breakers: {', '.join(breakers) or 'none'}")
    orchestrators = [p.url for p in stack.instances("orchestrator") if p.is_running()]
    users = [p.url for p in stack.instances("users") if p.is_running()]
    if orchestrators:
        attention = read_attention(orchestrators[0], users[0] if users else None, timeout=1.0)
        if "orchestrator" in attention.unknown:
            parts.append("orders ?")
        else:
            counts = attention.orders_by_state
            parts.append(
                "orders " + (", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none")
            )
        if attention.dead_letters:
            parts.append(f"{len(attention.dead_letters)} dead letter(s)")
    return time.strftime("%H:%M:%S ") + " | ".join(parts)


def _faults(stack: Stack) -> list[str]:
    """The faults on the stack's instances now, per instance (``harness fault``, chaos, the API alike)."""
    from harness.faults import FaultError, active_faults, faults_summary

    if stack.toxiproxy is None:
        return []
    try:
        proxies = {name: proxy.info for name, proxy in stack.toxiproxy.proxies().items()}
    except FaultError:
        return ["faults ?"]
    return [faults_summary(active_faults(proxies, list(stack.proxies))) or "no faults"]


_BAD_NEWS = frozenset({NoticeKind.EXITED, NoticeKind.RESTART_FAILED, NoticeKind.UNREACHABLE})


def _fault_proxy(stack: Stack, reported: _Reported) -> list[str]:
    """Each new notice of the fault proxy's supervisor on a line of its own; its state when not running."""
    if stack.supervisor is None:
        return []
    notices = stack.supervisor.notices
    for notice in notices[reported.notices :]:
        click.echo(f"\n! {notice.message}", err=notice.kind in _BAD_NEWS)
    reported.notices = len(notices)
    parts = []
    state = stack.supervisor.state
    if state is not FaultProxyState.RUNNING:
        parts.append(f"fault proxy {state}")
    restarts = sum(notice.kind is NoticeKind.RESTARTED for notice in notices)
    if restarts:
        parts.append(f"fault proxy restarted {restarts}x")
    return parts


@click.command()
@click.option(
    "--topology",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TOML file with services, instance counts and timings (default: built in).",
)
@click.option(
    "--workdir",
    default=DEFAULT_WORKDIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Databases, logs and event files go here.",
)
@click.option(
    "--orders",
    default=0,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Place this many orders once the stack is up.",
)
@click.option(
    "--for", "run_for", type=click.FloatRange(min=0), help="Stop after this many seconds (default: Ctrl-C)."
)
@click.option("--status-interval", default=2.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--allow-remote", is_flag=True, help="Allow external services off this machine.")
def up(
    topology: Path | None,
    workdir: Path,
    orders: int,
    run_for: float | None,
    status_interval: float,
    allow_remote: bool,
) -> None:
    """Start the stack on loopback, wait until it is ready, keep it running until Ctrl-C.

    Exit 0 after --for; 130 (SIGINT) or 143 (SIGTERM) once every process is stopped; 2 for a bad
    topology; 3 when the stack cannot start."""
    stack = Stack(load_topology(topology), workdir, progress=lambda line: click.echo(f"  {line}"),
                  allow_remote=allow_remote)  # fmt: skip
    click.echo(f"starting the stack in {stack.workdir}")
    with interruptible("every process was stopped"):  # a second signal cuts the grace, never the stop
        try:
            _run(stack, orders, run_for, status_interval)
        finally:
            began = time.monotonic()
            stack.stop()
            click.echo(f"\nstopped {len(stack.processes)} processes in {time.monotonic() - began:.2f}s")


def _run(stack: Stack, orders: int, run_for: float | None, status_interval: float) -> None:
    """Start, show, place the orders asked for, then a status line every interval until the time is up."""
    stack.start()
    click.echo(f"\n{len(stack.processes)} processes ready in {stack.started_in:.2f}s\n")
    _table(stack)
    if orders:
        _place(stack, orders)
    click.echo("\nrunning; Ctrl-C stops everything\n")
    reported = _Reported()
    deadline = None if run_for is None else time.monotonic() + run_for
    tty = sys.stdout.isatty()
    while deadline is None or time.monotonic() < deadline:
        line = _status_line(stack, reported)
        click.echo(f"\r{line}" if tty else line, nl=not tty)
        wait = status_interval if deadline is None else min(status_interval, deadline - time.monotonic())
        time.sleep(max(0.0, wait))


def _place(stack: Stack, count: int) -> None:
    """Up to 20 orders: a line each; more: a progress line every tenth, then a summary with the reasons."""
    from harness.stack._orders import PlacedOrder, place_orders

    click.echo(f"\nplacing {count} orders:")
    began = time.monotonic()
    states: Counter[str] = Counter()

    def placed(order: PlacedOrder) -> None:
        states[order.state] += 1
        done = sum(states.values())
        if count <= 20:
            click.echo(f"  {order.order_id}  {order.customer}  amount {order.amount}  -> {order.state} "
                       f"(HTTP {order.status_code})")  # fmt: skip
        elif done % max(1, count // 10) == 0 or done == count:
            so_far = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
            click.echo(f"  {done}/{count} in {time.monotonic() - began:.1f}s: {so_far}")

    results = place_orders(stack, count, placed=placed)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    click.echo(f"{count} orders in {time.monotonic() - began:.1f}s: {summary}")
    reasons = Counter(o.reason for o in results if o.state != "COMPLETED" and o.reason)
    for reason, n in reasons.most_common(5):
        click.echo(f"  {n} x {reason}")


@click.command()
@click.option(
    "--workdir", default=DEFAULT_WORKDIR, show_default=True, type=click.Path(file_okay=False, path_type=Path)
)
def status(workdir: Path) -> None:
    """Show what a running `harness up` started, whether each instance answers /health, and what needs an
    operator (sagas NEEDS_ATTENTION, outbox dead letters). Exit 1 when something is unhealthy or needs one."""
    statuses = read_status(workdir)
    click.echo(f"  {'service':<14} {'instance':<16} {'url':<26} {'pid':<8} health")
    for item in statuses:
        click.echo(f"  {item.kind:<14} {item.name:<16} {item.url:<26} {item.pid!s:<8} {_health(item)}")
    attention = read_attention(_first_ok(statuses, "orchestrator"), _first_ok(statuses, "users"))
    _show_attention(attention)
    problems = [f"{item.name} is {item.health}" for item in statuses if item.health != "ok"]
    problems += (
        [f"{len(attention.needs_attention)} saga(s) need attention"] if attention.needs_attention else []
    )
    problems += [f"{len(attention.dead_letters)} dead letter(s)"] if attention.dead_letters else []
    if problems:
        raise CheckFailed("; ".join(problems))


def _first_ok(statuses: list[InstanceStatus], kind: str) -> str | None:
    return next((item.url for item in statuses if item.kind == kind and item.health == "ok"), None)


def _show_attention(attention: Attention) -> None:
    if attention.orders_by_state:
        orders = ", ".join(f"{n} {state}" for state, n in sorted(attention.orders_by_state.items()))
        click.echo(f"\n  orders: {orders}")
    for stuck in attention.needs_attention[:20]:
        click.echo(click.style(f"  needs attention: order {stuck.what}: {stuck.reason}", fg="yellow"))
    for stuck in attention.dead_letters[:20]:
        click.echo(click.style(f"  dead letter: event {stuck.what}: {stuck.reason}", fg="yellow"))
    for service in attention.unknown:
        click.echo(f"  ({service} did not answer: what needs attention there is unknown)")


def _health(item: InstanceStatus) -> str:
    color = "green" if item.health == "ok" else "red"
    return click.style(item.health, fg=color)
