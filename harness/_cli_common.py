"""Helpers the CLI commands share: loopback guard, the flags a user gave, settings with one-line errors."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import pydantic
from click.core import ParameterSource

from harness.errors import ConfigError, EnvironmentUnavailable, HarnessError, RunEnded
from harness.net import is_loopback_host, is_loopback_url
from harness.signals import Interrupted, stop_on_signals
from harness.verdict import Verdict

if TYPE_CHECKING:
    from harness.report import ReportKind

_Settings = TypeVar("_Settings", bound=pydantic.BaseModel)


def ensure_loopback(host: str, *, allow_remote: bool, what: str) -> None:
    """Refuse a non-loopback address (a host or a URL) unless the user opted in explicitly."""
    loopback = is_loopback_url(host) if "://" in host else is_loopback_host(host)
    if not (allow_remote or loopback):
        raise ConfigError(f"{what} {host!r} is not a loopback address; pass --allow-remote to use it anyway")


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of the running command that the user set (a flag or its environment variable).

    A parameter left at its default is dropped, so what a ``--config`` file or a settings model says
    instead is not hidden by a flag nobody gave. Outside a click command: every value but None.
    """
    context = click.get_current_context(silent=True)
    if context is None:
        return {name: value for name, value in values.items() if value is not None}
    chosen = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)
    return {name: value for name, value in values.items() if context.get_parameter_source(name) in chosen}


def build_settings(model: type[_Settings], **values: Any) -> _Settings:
    """Validate flags into a settings model; a bad value becomes one readable ConfigError line."""
    try:
        return model(**values)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]).replace("_", "-")
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid {where}: {message}" if where else f"invalid settings: {message}") from exc


@contextmanager
def interruptible(cleaned: str, *, report: tuple[ReportKind, Path] | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM inside the block stop the run (its own ``finally`` clauses clean up); the command
    then ends with one line saying what was cleaned up and 130 or 143. With ``report`` (the run's kind and
    report folder), the folder says the run was interrupted (``interrupted.json``, and a report page unless
    the run wrote its own), so an earlier run's report is never taken for this one's."""
    started = datetime.now(UTC)
    try:
        with stop_on_signals():
            yield
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        where = ""
        if report is not None:
            from harness.report._interrupted import Interruption, write_interrupted

            kind, folder = report
            try:
                page = write_interrupted(folder, Interruption(kind, exc.signum, started, cleaned))
                where = f"; said so in {page}"
            except OSError as error:
                where = f"; could not say so in {folder}: {error.strerror or error}"
        raise RunEnded(f"interrupted by {name}; {cleaned}{where}", exc.exit_code) from None


VERDICT_COLOURS = {Verdict.HELD: "green", Verdict.DEVIATED: "red", Verdict.INCONCLUSIVE: "yellow"}


def end_with_verdict(verdict: Verdict, *, held: str, deviated: list[str], inconclusive: list[str]) -> None:
    """Print a run's verdict in its colour, each reason one line, and end the command with its exit code."""
    colour = VERDICT_COLOURS[verdict]
    if verdict is Verdict.HELD:
        click.echo(click.style("held: ", fg=colour) + held)
        return
    lines = deviated if verdict is Verdict.DEVIATED else inconclusive
    for line in lines:
        click.echo(click.style(f"{verdict.upper()} ", fg=colour) + line)
    if verdict is Verdict.DEVIATED:
        raise RunEnded(f"deviated: {len(lines)} check(s) did not hold", verdict.exit_code)
    raise RunEnded(
        f"inconclusive: the harness could not produce the evidence its checks need ({len(lines)} reason(s))",
        verdict.exit_code,
    )


def end_with_leftovers(left: list[str]) -> None:
    """A run whose cleanup could not restore the stack ends with exit 3, whatever its verdict."""
    if left:
        for line in left:
            click.echo(click.style("LEFT BEHIND ", fg="red") + line)
        raise EnvironmentUnavailable(f"cleanup could not restore the stack ({len(left)} item(s) left)")


class HarnessGroup(click.Group):
    """Turns every HarnessError into one readable line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            click.echo(f"harness: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
