"""The pyramid's levels: which folders under ``tests/`` are levels, and one pytest run per level.

Each level runs in its own pytest process with ``--junitxml`` (the matrix reads nothing else), from the
root it tests and with that root first on ``PYTHONPATH``, so pytest and every service process it starts
(``python -m harness serve ...``) import the code under that root, not the editable install's. A run is
bounded: at its deadline pytest gets SIGINT (its fixtures stop their stacks), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness._process import _die_with_parent
from harness.errors import ConfigError

# The pyramid's order, bottom up; a new level folder is shown after these, by name.
KNOWN_LEVELS: tuple[str, ...] = ("unit", "integration", "contract", "fuzz", "chaos", "load", "e2e")
DEFAULT_LEVEL_TIMEOUT = 1800.0
_INTERRUPT_GRACE = 5.0  # a level interrupted gets this long to tear down, then SIGKILL
_POLL = 0.5
_PERCENT = re.compile(rb"\[\s*(\d{1,3})%\]")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LevelRun:
    """How one level's pytest process ended; ``exit_code`` None when it had to be killed at its deadline."""

    level: str
    exit_code: int | None
    seconds: float
    junit: Path
    log: Path

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


def order_levels(names: Sequence[str]) -> tuple[str, ...]:
    """Known levels in pyramid order, then any other level by name, each once."""
    unique = set(names)
    return (*(n for n in KNOWN_LEVELS if n in unique), *sorted(unique - set(KNOWN_LEVELS)))


def discover_levels(root: Path) -> tuple[str, ...]:
    """The level folders under ``root/tests`` that hold test files, in pyramid order."""
    tests = root / "tests"
    if not tests.is_dir():
        raise ConfigError(f"{root} has no tests/ folder: give the root of the project whose pyramid to run")
    folders = [
        d.name
        for d in tests.iterdir()
        if d.is_dir() and not d.name.startswith(("_", ".")) and any(d.rglob("test_*.py"))
    ]
    return order_levels(folders)


def choose_levels(available: Sequence[str], requested: Sequence[str] | None) -> tuple[str, ...]:
    """``requested`` (all of ``available`` when None) in pyramid order; ConfigError naming an unknown one."""
    if requested is None:
        return order_levels(available)
    if unknown := [name for name in requested if name not in available]:
        raise ConfigError(f"unknown level {', '.join(unknown)}; the levels here: {', '.join(available)}")
    if not requested:
        raise ConfigError("no level chosen")
    return order_levels(requested)


def level_environment(root: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a level's pytest (default: this process's): ``root`` first on ``PYTHONPATH``, so
    pytest and every process it starts import the code under ``root``; pact's telemetry off."""
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [environment.get("PYTHONPATH")])])
    environment.setdefault("PACT_DO_NOT_TRACK", "true")
    return environment


def pytest_command(level: str, junit: Path, *, fail_fast: bool, ignore: Sequence[str] = ()) -> list[str]:
    """The command line of one level's run (from the root it tests), leaving out the ``ignore`` globs."""
    command = [sys.executable, "-m", "pytest", f"tests/{level}", f"--junitxml={junit}"]
    command += ["-o", "junit_family=xunit2", "-q", *(f"--ignore-glob={glob}" for glob in ignore)]
    return [*command, "-x"] if fail_fast else command


def run_level(
    level: str,
    *,
    root: Path,
    junit: Path,
    log: Path,
    fail_fast: bool = False,
    ignore: Sequence[str] = (),
    timeout: float = DEFAULT_LEVEL_TIMEOUT,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> LevelRun:
    """Run ``tests/<level>`` under ``root`` (``fail_fast``: stop at the first failing test), writing its JUnit
    XML to ``junit`` and its output to ``log``; ``progress`` hears its completion in steps of 10%."""
    junit.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)
    environment = level_environment(root, env)
    started = time.monotonic()
    deadline = started + timeout
    reported = 0
    with log.open("wb") as output:
        process = subprocess.Popen(
            pytest_command(level, junit.resolve(), fail_fast=fail_fast, ignore=ignore),
            cwd=root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_level_preexec(),
        )
        try:
            while True:
                try:
                    exit_code: int | None = process.wait(timeout=_POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                reported = _report_progress(level, log, reported, progress)
                if time.monotonic() >= deadline:
                    _stop(process)
                    exit_code = None
                    break
        except BaseException:  # Ctrl-C (or anything else) here: the level's pytest must not outlive us
            _stop(process)
            raise
    return LevelRun(level, exit_code, time.monotonic() - started, junit, log)


def _level_preexec() -> Callable[[], None]:
    """What a level's pytest runs before exec: Ctrl-C at its default, and SIGTERM when the pyramid dies.

    A pyramid started as a background job of a script (``harness pyramid --mutants &``) inherits SIGINT
    ignored, and Python then leaves it ignored: the level would shrug off the SIGINT that stops it, and the
    commands its tests interrupt (``harness chaos run``, ``harness fault --for``) would never see theirs."""
    die_with_parent = _die_with_parent()

    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if die_with_parent is not None:
            die_with_parent()

    return preexec


def _report_progress(level: str, log: Path, reported: int, progress: Progress | None) -> int:
    if progress is None:
        return reported
    try:
        tail = log.read_bytes()[-4096:]
    except OSError:
        return reported
    found = _PERCENT.findall(tail)
    percent = int(found[-1]) if found else 0
    step = percent // 10 * 10
    if step > reported and step < 100:
        progress(f"{level}: {step}%")
        return step
    return reported


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the level's process group (pytest runs its teardowns), then SIGKILL if it lingers or this
    wait is itself interrupted; the level's pytest is waited for on every path."""
    if process.poll() is not None:
        return
    try:
        try:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=_INTERRUPT_GRACE)
        finally:  # not unreaped yet, so the group id is still the level's own
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
