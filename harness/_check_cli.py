"""``harness check saga``: the Jepsen-style saga check, its progress, its verdict table and exit code."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from harness.errors import CheckFailed


@click.group()
def check() -> None:
    """Runs that put a guarantee under faults and judge it with an independent checker."""


@check.command("saga")
@click.option(
    "--orders",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Orders to place, concurrently, over many customers.",
)
@click.option(
    "--kills",
    default=5,
    show_default=True,
    type=click.IntRange(0, 100),
    help="SIGKILLs of the orchestrator at random moments (each followed by a restart).",
)
@click.option(
    "--seed",
    default=1,
    show_default=True,
    type=int,
    help="Seeds customers, orders, fault windows and kill times: the same seed, the same run.",
)
@click.option(
    "--rate",
    default=20.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=1000),
    help="Orders started per second (the run lasts orders / rate seconds, plus settling).",
)
@click.option(
    "--concurrency",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Orders in flight at most.",
)
@click.option("--customers", type=click.IntRange(1, 10_000), help="Customers (default: orders / 10, >= 5).")
@click.option(
    "--fault-windows",
    type=click.IntRange(0, 10_000),
    help="Random toxic and partition windows on users and notifications (default: 1 per 2 s).",
)
@click.option(
    "--cut-windows",
    type=click.IntRange(0, 10_000),
    help="Windows of toxics that cut requests or answers mid-message, or lose a request's first bytes "
    "(default: 1 per 4 s).",
)
@click.option(
    "--max-needs-attention",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Orders allowed to end NEEDS_ATTENTION.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty folder for the stack (default: a fresh temporary folder).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where schedule.json, history.jsonl and result.json go (default: WORKDIR/report).",
)
def check_saga(workdir: Path | None, report_dir: Path | None, **options: object) -> None:
    """Place orders under random toxics, cut messages and orchestrator kills, then check history and
    databases.

    Counted, each against a bound of 0: stuck sagas, orders acknowledged but missing, acknowledged
    outcomes lost, double reservations, credit not conserved, duplicate notifications, customers
    notified of an order later compensated, and more. Exit 1 when any count exceeds its bound."""
    from harness._cli_common import build_settings, interruptible
    from harness.checks._saga_run import SagaCheckConfig, run_saga_check
    from harness.report import ReportKind

    config = build_settings(SagaCheckConfig, **options)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="harness-saga-check-")) / "stack"
    report_dir = report_dir or workdir.parent / "report"
    click.echo(
        f"saga check: {config.orders} orders, {config.kills} kills, seed {config.seed}; stack in {workdir}"
    )
    with interruptible("the stack and every fault were stopped", report=(ReportKind.RUN, report_dir)):
        result = run_saga_check(
            config, workdir=workdir, report_dir=report_dir, progress=lambda line: click.echo(f"  {line}")
        )
    click.echo(
        f"\n{sum(result.calls.values())} orders placed in {result.wall_seconds:.1f}s "
        f"({', '.join(f'{n} {k}' for k, n in sorted(result.calls.items()))}); "
        f"final states: {', '.join(f'{n} {k}' for k, n in sorted(result.final_states.items()))}"
    )
    click.echo(f"faults applied: {result.faults_applied} ({result.kills_applied} orchestrator kills)")
    for failure in result.fault_failures:
        click.echo(f"  ! {failure}")
    click.echo(f"\n  {'check':<36} {'measured':>8} {'bound':>6}")
    for figure in result.figures:
        mark = click.style("ok", fg="green") if figure.holds else click.style("FAIL", fg="red")
        click.echo(f"  {figure.name:<36} {figure.measured:>8} {figure.bound:>6}  {mark}")
    for anomaly in result.anomalies[:20]:
        click.echo(f"  - {anomaly}")
    if len(result.anomalies) > 20:
        click.echo(f"  ... and {len(result.anomalies) - 20} more in {report_dir / 'result.json'}")
    click.echo(f"\nreport: {report_dir}")
    if not result.passed:
        failed = [f.name for f in result.figures if not f.holds]
        raise CheckFailed(f"{len(failed)} saga check(s) exceeded their bound: {', '.join(failed)}")
