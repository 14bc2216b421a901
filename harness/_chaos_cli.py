"""``harness chaos run|validate|cleanup``: experiment files run with Chaos Toolkit's engine on the stack."""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import RunEnded
from harness.signals import Interrupted
from harness.verdict import ExitCode


@click.group()
def chaos() -> None:
    """Chaos experiments from files (Chaos Toolkit format) on the stack, with guaranteed cleanup."""


FILE = click.argument("experiment", type=click.Path(dir_okay=False, path_type=Path))
TOPOLOGY = click.option(
    "--topology",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Stack to start (default: built in).",
)


@chaos.command("run")
@FILE
@TOPOLOGY
@click.option(
    "--attach",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Use the stack a `harness up` runs in this workdir instead of starting one.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the started stack keeps its files (default: REPORT/stack).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where journal.json, timeline.json and report.html go (default: chaos-report/<file name>).",
)
@click.option("--seed", type=int, help="Recorded with the run; seeds what the experiment draws.")
@click.option(
    "--max-time", type=click.FloatRange(min=1), help="Stop the experiment cleanly after this many seconds."
)
@click.option("--allow-remote", is_flag=True, help="Allow non-loopback targets in the experiment.")
@click.option("--fail-fast", is_flag=True, help="Stop the method at the first probe that does not hold.")
def chaos_run(
    experiment: Path,
    topology: Path | None,
    attach: Path | None,
    workdir: Path | None,
    report_dir: Path | None,
    seed: int | None,
    max_time: float | None,
    allow_remote: bool,
    fail_fast: bool,
) -> None:
    """Run EXPERIMENT: steady state, method, rollbacks, cleanup, steady state again; then the report.

    Exit 0 when the hypothesis held before, after and after cleanup; 1 when it deviated; 4 when it was
    inconclusive (a probe's evidence too thin: a busy machine, too few calls); 2 for a bad file, arguments
    or a fault value the proxy refused; 3 when cleanup could not restore the stack or the proxy could not
    be reached; 130 (SIGINT) or 143 (SIGTERM) when interrupted, after cleanup."""
    from harness._cli_common import interruptible
    from harness.chaos import run_chaos
    from harness.report import ReportKind

    report_dir = report_dir or Path("chaos-report") / experiment.stem
    click.echo(f"chaos run {experiment}")
    with interruptible("everything started was stopped", report=(ReportKind.CHAOS, report_dir)):
        outcome = run_chaos(
            experiment,
            report_dir=report_dir,
            topology_path=topology,
            workdir=workdir,
            attach=attach,
            seed=seed,
            max_time=max_time,
            allow_remote=allow_remote,
            fail_fast=fail_fast,
            progress=lambda line: click.echo(f"  [{_clock()}] {line}"),
        )
        if outcome.exit_code in (ExitCode.SIGINT, ExitCode.SIGTERM):  # stopped inside Chaos Toolkit's run
            raise Interrupted(outcome.exit_code - 128)
    click.echo(f"\njournal:  {outcome.journal_path}\ntimeline: {outcome.timeline_path}")
    if outcome.report_path is not None:
        click.echo(f"report:   {outcome.report_path}")
    if outcome.exit_code == ExitCode.HELD:
        click.echo(click.style("held: ", fg="green") + outcome.verdict)
        return
    if outcome.exit_code == ExitCode.INCONCLUSIVE:
        click.echo(click.style("inconclusive: ", fg="yellow") + outcome.verdict)
    raise RunEnded(outcome.verdict, outcome.exit_code)


@chaos.command("validate")
@FILE
@TOPOLOGY
@click.option("--allow-remote", is_flag=True, help="Allow non-loopback targets in the experiment.")
def chaos_validate(experiment: Path, topology: Path | None, allow_remote: bool) -> None:
    """Check EXPERIMENT without running it: format and shape, harness control, every harness activity's
    arguments (instance names in the topology the run would use, fault values the proxy takes), loopback
    targets."""
    from harness.chaos import load_and_validate
    from harness.chaos._runner import named_topology
    from harness.stack import load_topology

    stack = load_topology(topology or named_topology(experiment))
    loaded = load_and_validate(experiment, allow_remote=allow_remote, topology=stack)
    activities = len(loaded.get("method", [])) + len(
        loaded.get("steady-state-hypothesis", {}).get("probes", [])
    )
    click.echo(f"{experiment}: valid ({loaded['title']!r}, {activities} activities)")


@chaos.command("cleanup")
@click.option(
    "--workdir",
    default=".harness/run",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The workdir of the running stack a crashed experiment left faults on.",
)
def chaos_cleanup(workdir: Path) -> None:
    """Remove the faults a crashed or killed run left on a running stack (from the run's ledger); when the
    run's harness was the stack's and is gone, end what is left of that stack instead."""
    from harness.chaos import cleanup_after_crash
    from harness.chaos._session import LEDGER
    from harness.stack._custody import end_abandoned

    abandoned = end_abandoned(workdir)
    if abandoned is not None:  # the faults were on processes of that stack: they ended with it
        click.echo(abandoned.line)
        (workdir / LEDGER).unlink(missing_ok=True)
        return
    report = cleanup_after_crash(workdir)
    for item in report.removed:
        click.echo(f"removed {item}")
    if not report.removed and not report.left:
        click.echo("nothing to clean up")
    if report.left:
        raise RunEnded("could not undo: " + "; ".join(report.left), ExitCode.ENVIRONMENT)


def _clock() -> str:
    import time

    return time.strftime("%H:%M:%S")
