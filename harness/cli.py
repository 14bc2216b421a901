"""The ``harness`` command: a thin layer that parses, calls one library function, renders and exits.

Exit codes: 0 ok, 1 a check failed, 2 usage or configuration error, 3 environment unavailable.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness._chaos_cli import chaos
from harness._check_cli import check
from harness._cli_common import HarnessGroup
from harness._contract_cli import contract
from harness._faults_cli import toxiproxy
from harness._serve_cli import serve
from harness._up_cli import status, up
from harness.errors import CheckFailed


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
    for outcome in report.checks:
        mark = click.style("PASS", fg="green") if outcome.passed else click.style("FAIL", fg="red")
        click.echo(f"  {mark}  {outcome.name}: {outcome.detail}")
    click.echo(f"\nlogs and events: {report.workdir}")
    if not report.passed:
        raise CheckFailed(f"{sum(not c.passed for c in report.checks)} of {len(report.checks)} checks failed")


cli.add_command(serve)
cli.add_command(up)
cli.add_command(status)
cli.add_command(toxiproxy)
cli.add_command(contract)
cli.add_command(check)
cli.add_command(chaos)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="harness")
