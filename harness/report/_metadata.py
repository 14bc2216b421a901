"""The provenance of a report (harness version, git commit), found without ever failing the run.

A report written after a long run must not be lost because git is missing or the package is not
installed: whatever cannot be found is ``unknown``.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness.report._model import Metadata

DISTRIBUTION = "resilience-harness"
UNKNOWN = "unknown"
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def harness_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return UNKNOWN


def git_commit(where: Path = _PACKAGE_DIR, *, timeout: float = 5.0) -> str:
    """The short commit of the checkout holding ``where`` (``-dirty`` when it has changes), or
    ``unknown`` (no git, not a checkout, a slow disk)."""
    try:
        head = _git(where, timeout, "rev-parse", "--short", "HEAD")
        dirty = _git(where, timeout, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    if not head:
        return UNKNOWN
    return f"{head}-dirty" if dirty else head


def _git(where: Path, timeout: float, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(where), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def collect_metadata(
    *, command: str, started: datetime, ended: datetime, seed: int | None = None, where: Path | None = None
) -> Metadata:
    """The metadata of a run that just ended, with this harness's version and commit."""
    commit = git_commit(where) if where is not None else git_commit()
    return Metadata(
        seed=seed, harness_version=harness_version(), commit=commit, command=command, started=started,
        ended=ended,
    )  # fmt: skip
