"""``harness pyramid``: the behaviour x level matrix of the test pyramid, and the seeded bugs it catches."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from harness._cli_common import build_settings, interruptible
from harness.errors import CheckFailed


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise click.BadParameter("name at least one, separated by commas")
    return names


@click.command()
@click.option("--levels", help="Levels to run, comma-separated (default: every folder under tests/).")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Read the JUnit XML files (*.xml) under this folder instead of running the levels.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("pyramid-report"),
    show_default=True,
    help="Where the JUnit XML, logs, pyramid.json, mutants.json and report.html go.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path(),
    help="The project whose tests/ to run (default: the current folder).",
)
@click.option(
    "--level-timeout",
    type=click.FloatRange(min=1),
    default=1800.0,
    show_default=True,
    help="Seconds one level's pytest may run before it is stopped.",
)
@click.option("--mutants", is_flag=True, help="Run the levels against the seeded bugs instead.")
@click.option("--bugs", help="With --mutants: seeded bug ids, comma-separated (default: all).")
@click.option(
    "--cheapest", is_flag=True, help="With --mutants: bottom up, stop at the first level that catches a bug."
)
@click.option(
    "--summary",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also append the results as Markdown to this file (a CI job summary: $GITHUB_STEP_SUMMARY).",
)
@click.option("--list", "list_only", is_flag=True, help="List the behaviours and seeded bugs; run nothing.")
def pyramid(
    levels: str | None,
    from_dir: Path | None,
    report_dir: Path,
    root: Path,
    level_timeout: float,
    mutants: bool,
    bugs: str | None,
    cheapest: bool,
    summary: Path | None,
    list_only: bool,
) -> None:
    """Run every level of tests/ (or read their JUnit XML) and show which behaviour each level holds.

    Exit 1 when a test failed or a catalogued behaviour is held by no test (a hole; judged when every level
    ran), or, with --mutants, when a seeded bug was caught by no level; exit 2 for bad arguments.
    """
    from harness.pyramid import (
        MutantSettings,
        MutantsResult,
        PyramidResult,
        PyramidSettings,
        matrix_lines,
        mutants_lines,
        mutants_markdown,
        pyramid_markdown,
        run_mutants,
        run_pyramid,
        write_pyramid_report,
        write_result,
    )
    from harness.report import ReportKind

    if list_only:
        _list()
        return
    if not mutants and (bugs is not None or cheapest):
        raise click.UsageError("--bugs and --cheapest go with --mutants")
    if mutants and from_dir is not None:
        raise click.UsageError("--from reads a matrix run's XML; --mutants runs the levels itself")
    command = shlex.join(["harness", *sys.argv[1:]])
    result: PyramidResult | MutantsResult
    if mutants:
        settings = build_settings(
            MutantSettings, root=root, bugs=_names(bugs), levels=_names(levels), cheapest_only=cheapest,
            report_dir=report_dir, level_timeout=level_timeout,
        )  # fmt: skip
        with interruptible(
            f"every level stopped; what was found so far is in {report_dir}",
            report=(ReportKind.PYRAMID, report_dir),
        ):
            result = run_mutants(
                settings,
                command=command,
                progress=click.echo,
                checkpoint=lambda partial: write_result(partial, report_dir),
            )
        lines, markdown = mutants_lines(result), mutants_markdown(result)
    else:
        matrix = build_settings(
            PyramidSettings, root=root, levels=_names(levels), from_dir=from_dir, report_dir=report_dir,
            level_timeout=level_timeout,
        )  # fmt: skip
        with interruptible("every level stopped", report=(ReportKind.PYRAMID, report_dir)):
            result = run_pyramid(matrix, command=command, progress=click.echo)
        lines, markdown = matrix_lines(result), pyramid_markdown(result)
    saved = write_result(result, report_dir)
    report = write_pyramid_report(report_dir)
    click.echo("")
    click.echo("\n".join(lines))
    click.echo(f"\nresults: {saved}\nreport:  {report}")
    if summary is not None:
        with summary.open("a", encoding="utf-8") as out:
            out.write("\n".join(markdown) + "\n")
    if not result.passed:
        raise CheckFailed("seeded bugs were missed" if mutants else "the pyramid has failures or holes")


def _list() -> None:
    from harness.pyramid import BEHAVIOURS, SEEDED_BUGS

    click.echo("behaviours:")
    for behaviour in BEHAVIOURS:
        click.echo(f"  {behaviour.id:<46} {behaviour.description}")
    click.echo("\nseeded bugs:")
    for bug in SEEDED_BUGS:
        click.echo(f"  {bug.id:<34} {bug.description} ({', '.join(bug.files)})")
