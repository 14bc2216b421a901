"""What every test that starts a child process shares: the repository on the child's import path, and a child
waited for however the test ends (a leftover one fails the session: tests/_leftovers.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[1]
P = TypeVar("P", bound="subprocess.Popen[Any]")


def child_env() -> dict[str, str]:
    """The repository on the child's path, wherever pytest was started from and whatever is installed."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}


def reap(process: subprocess.Popen[Any], *, grace: float = 0.0) -> int:
    """Wait for ``process`` whatever happened before: it gets ``grace`` seconds to end by itself (a signal
    the test sent), then SIGKILL; its pipes are closed. Its exit code."""
    if grace > 0:
        with suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    if process.poll() is None:
        process.kill()
    code = process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return code


@contextmanager
def reaped(process: P, *, grace: float = 0.0) -> Iterator[P]:
    """``with reaped(subprocess.Popen(...)) as child:`` the child is reaped (``reap``) when the block ends,
    by an assertion, a timeout or normally."""
    try:
        yield process
    finally:
        reap(process, grace=grace)
