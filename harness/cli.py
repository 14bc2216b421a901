"""The ``harness`` command: a thin layer that parses, calls one library function, renders and exits.

Exit codes: the one map in ``harness.verdict`` (shown by ``harness --help``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from harness._cli_common import HarnessGroup
from harness.errors import CheckFailed
from harness.verdict import MEANINGS

# Each command's module is imported only when that command runs: `harness serve users` (how every service
# process starts) does not pay for the contract, chaos or report modules.
LAZY_COMMANDS = {
    "chaos": "harness._chaos_cli:chaos",
    "check": "harness._check_cli:check",
    "contract": "harness._contract_cli:contract",
    "fault": "harness._fault_cli:fault",
    "load": "harness._load_cli:load",
    "pyramid": "harness._pyramid_cli:pyramid",
    "run": "harness._run_cli:run",
    "serve": "harness._serve_cli:serve",
    "status": "harness._up_cli:status",
    "toxiproxy": "harness._faults_cli:toxiproxy",
    "up": "harness._up_cli:up",
}


class LazyGroup(HarnessGroup):
    """A HarnessGroup whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="\b\nExit codes, the same for every command:\n"
    + "\n".join(f"  {int(code):<4} {meaning}" for code, meaning in MEANINGS.items()),
)
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


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="harness")
