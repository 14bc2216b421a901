"""``harness run``: the main job, with progress throughout and a one-screen summary."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType

import click

from harness.errors import CheckFailed


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


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

    Exit 0 when all three held, 1 when one did not."""
    from harness._main_job import run_main_job

    began = time.monotonic()

    def progress(line: str) -> None:
        click.echo(f"{time.monotonic() - began:6.1f}s {line}")

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = run_main_job(report_dir, topology_path=topology, workdir=workdir, progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(f"\nharness run: {outcome.seconds:.0f}s")
    for part in outcome.parts:
        mark = click.style("PASS", fg="green") if part.passed else click.style("FAIL", fg="red")
        click.echo(f"  {mark}  {part.name:<9} {part.line}")
        if part.report is not None:
            click.echo(f"        {'':<9} {part.report}")
    click.echo(f"\nreport: {outcome.report_path}")
    if not outcome.passed:
        failed = [p.name for p in outcome.parts if not p.passed]
        raise CheckFailed(f"{', '.join(failed)} did not hold")
