"""``harness load run|worker|validate``: Locust profiles on the stack, judged by the services' evidence."""

from __future__ import annotations

import time
from pathlib import Path

import click

from harness._cli_common import end_with_leftovers, end_with_verdict, ensure_loopback, interruptible
from harness.errors import ConfigError, RunEnded
from harness.signals import Interrupted, stop_on_signals
from harness.verdict import ExitCode


@click.group()
def load() -> None:
    """Load runs with Locust: thresholds, balancer shares and breakers under load, distributed workers."""


PROFILE = click.argument("profile", type=click.Path(dir_okay=False, path_type=Path))
ALLOW_REMOTE = click.option(
    "--allow-remote", is_flag=True, help="Allow non-loopback targets, master addresses and workers."
)


@load.command("run", context_settings={"ignore_unknown_options": True})
@PROFILE
@click.option(
    "--topology",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Stack to start (default: built in).",
)
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
    help="Where Locust's CSV, results.json, timeline.json and report.html go "
    "(default: load-report/<profile name>).",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="An earlier run's results.json: report regressions against it.",
)
@click.option("--processes", type=click.IntRange(min=1), help="Locust worker processes on this machine.")
@click.option(
    "--master", is_flag=True, help="Run Locust's master only; workers connect with `harness load worker`."
)
@click.option(
    "--expect-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --master: workers to wait for before the load starts.",
)
@click.option(
    "--master-bind-host",
    default="127.0.0.1",
    show_default=True,
    help="With --master: the address workers connect to (non-loopback needs --allow-remote).",
)
@click.option(
    "--master-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="The port Locust's master listens on for workers: with --master 5557 unless given; with "
    "--processes a free loopback port from the OS.",
)
@ALLOW_REMOTE
@click.argument("locust_args", nargs=-1, type=click.UNPROCESSED)
def load_run(
    profile: Path,
    topology: Path | None,
    attach: Path | None,
    workdir: Path | None,
    report_dir: Path | None,
    baseline: Path | None,
    processes: int | None,
    master: bool,
    expect_workers: int,
    master_bind_host: str,
    master_port: int | None,
    allow_remote: bool,
    locust_args: tuple[str, ...],
) -> None:
    """Run PROFILE: start the stack (or attach), run Locust headless with the profile's load and faults,
    judge thresholds and behaviour, write the report folder. Arguments after `--` go to Locust as they are.

    Exit 0 when every threshold and check held; 1 when one did not (each failure one line); 4 when the
    harness could not produce the evidence (inconclusive: a busy machine, too few calls); 2 for a bad
    profile or arguments; 3 when the stack or Locust failed."""
    from harness.load import Distribution, run_load
    from harness.report import ReportKind

    if topology is not None and attach is not None:
        raise ConfigError("--topology and --attach exclude each other: an attached stack has its own")
    distribution = Distribution(
        processes=processes,
        master=master,
        expect_workers=expect_workers,
        bind_host=master_bind_host,
        port=master_port,
    )
    report_dir = report_dir or Path("load-report") / profile.stem
    click.echo(f"load run {profile}")
    with interruptible(
        "Locust, the stack and every fault were stopped", report=(ReportKind.LOAD, report_dir)
    ):
        outcome = run_load(
            profile,
            report_dir=report_dir,
            topology_path=topology,
            workdir=workdir,
            attach=attach,
            baseline=baseline,
            distribution=distribution,
            allow_remote=allow_remote,
            locust_args=locust_args,
            progress=lambda line: click.echo(f"  [{time.strftime('%H:%M:%S')}] {line}"),
        )
    results = outcome.results
    click.echo("")
    for section in results.sections:
        click.echo(section.title)
        for figure in section.figures:
            click.echo(f"  {figure.line()}")
    for warning in results.warnings:
        click.echo(click.style("warning: ", fg="yellow") + warning)
    click.echo(f"\nresults:  {outcome.results_path}\nreport:   {outcome.report_path}")
    end_with_leftovers(outcome.left_behind)
    end_with_verdict(
        results.verdict,
        held="every threshold and check",
        deviated=outcome.failed,
        inconclusive=outcome.inconclusive,
    )


@load.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--master-host", required=True, help="The machine `harness load run --master` runs on.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
@click.option("--processes", type=click.IntRange(min=1), help="Worker processes to fork on this machine.")
@ALLOW_REMOTE
@click.argument("locust_args", nargs=-1, type=click.UNPROCESSED)
def load_worker(
    master_host: str,
    master_port: int,
    processes: int | None,
    allow_remote: bool,
    locust_args: tuple[str, ...],
) -> None:
    """A Locust worker for a `harness load run --master`: it gets its plan from the master, runs until the
    master's load ends, and never outlives this command."""
    from harness.load import LocustProcess, worker_command

    ensure_loopback(master_host, allow_remote=allow_remote, what="--master-host")
    command = worker_command(master_host, master_port, processes, locust_args)
    worker = LocustProcess(command, None)
    click.echo(f"load worker: connecting to {master_host}:{master_port}")
    try:
        with stop_on_signals():
            worker.start()
            code = worker.wait(timeout=None)
    except Interrupted as exc:
        code = exc.exit_code
    finally:
        worker.stop()
    if code in (ExitCode.SIGINT, ExitCode.SIGTERM):
        raise RunEnded("interrupted; the Locust worker was stopped", code)
    if code:
        raise RunEnded(f"the Locust worker ended with code {code}", ExitCode.ENVIRONMENT)


@load.command("validate")
@PROFILE
@click.option(
    "--topology",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The stack the profile is for (default: built in): the instances and services it may name.",
)
def load_validate(profile: Path, topology: Path | None) -> None:
    """Check PROFILE without running it: keys, values, stages, fault windows (their values as the fault
    proxy takes them), checks, and the names of instances and services in the topology."""
    from harness.load import load_profile
    from harness.load._target import check_names
    from harness.stack import load_topology

    loaded = load_profile(profile)
    stack = load_topology(topology)
    check_names(loaded, profile, {name: kind for kind, name in stack.instances()})
    windows = len(loaded.faults.windows)
    click.echo(f"{profile}: valid ({loaded.title!r}, {loaded.load.seconds:g} s, {windows} fault window(s))")
