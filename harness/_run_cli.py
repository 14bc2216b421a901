"""``harness run``: the main job, with progress throughout and a one-screen summary."""

from __future__ import annotations

import time
from pathlib import Path

import click

from harness._cli_common import VERDICT_COLOURS, interruptible
from harness.errors import RunEnded
from harness.verdict import ExitCode


@click.command()
@click.option(
    "--topology",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The stack to start (default: built in).",
)
@click.option(
    "--report",
    "report_dir",
    default="harness-run",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where report.html and the contract, chaos and load evidence go.",
)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the stack keeps its files (default: REPORT/stack).")  # fmt: skip
def run(topology: Path | None, report_dir: Path, workdir: Path | None) -> None:
    """The main job: the stack up, every contract verified, a chaos experiment (a slow users instance: its
    breaker opens, traffic moves, it closes) and a Locust run with a fault window, then one HTML report.

    Exit 0 when all three held, 1 when one deviated, 4 when none deviated but one was inconclusive (the
    harness could not produce the evidence), 2/3 for bad input or an unavailable environment, 130/143 when
    interrupted."""
    from harness._main_job import run_main_job
    from harness.report import ReportKind

    began = time.monotonic()

    def progress(line: str) -> None:
        click.echo(f"{time.monotonic() - began:6.1f}s {line}")

    with interruptible("the stack and every fault were stopped", report=(ReportKind.RUN, report_dir)):
        outcome = run_main_job(report_dir, topology_path=topology, workdir=workdir, progress=progress)
    click.echo(f"\nharness run: {outcome.seconds:.0f}s")
    for part in outcome.parts:
        mark = click.style(f"{part.verdict.upper():<12}", fg=VERDICT_COLOURS[part.verdict])
        click.echo(f"  {mark} {part.name:<9} {part.line}")
        if part.report is not None:
            click.echo(f"        {'':<9} {part.report}")
    click.echo(f"\nreport: {outcome.report_path}")
    if outcome.exit_code != ExitCode.HELD:
        shown = [f"{p.name} {p.verdict}" for p in outcome.parts if p.exit_code != ExitCode.HELD]
        raise RunEnded(f"{outcome.verdict}: {', '.join(shown)}", outcome.exit_code)
