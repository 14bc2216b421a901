"""Imported at start-up by every Python child of a test session (tests/_leftovers.py puts this folder on
PYTHONPATH). A warning raised where it cannot propagate, in a finalizer (an unwaited ``Popen``, an unclosed
file or socket), is only printed even with ``PYTHONWARNINGS=error``: it is also recorded here, and the
session's leftover check fails naming it."""

from __future__ import annotations

import os
import sys


def _locust_socket_at_exit(unraisable: sys.UnraisableHookArgs) -> bool:
    """Locust kills the users still in a request when its run ends; their one pooled connection each is
    then dropped by the exiting process, not closed (the harness closes every user's pool at quitting)."""
    locust = bool(sys.argv) and sys.argv[0].endswith(os.path.join("locust", "__main__.py"))
    return (
        locust
        and isinstance(unraisable.exc_value, ResourceWarning)
        and "unclosed <socket" in str(unraisable.exc_value)
    )


def _import_cut_short(unraisable: sys.UnraisableHookArgs) -> bool:
    """A process stopped by a signal in the middle of an import (a level of `harness pyramid` interrupted
    by the signal tests) leaves that module's cached bytecode file to the collector: not a leak."""
    message = str(unraisable.exc_value)
    return isinstance(unraisable.exc_value, ResourceWarning) and ".pyc'>" in message


def _record_finalizer_warnings(folder: str) -> None:
    previous = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        ignored = _locust_socket_at_exit(unraisable) or _import_cut_short(unraisable)
        if isinstance(unraisable.exc_value, Warning) and not ignored:
            try:
                argv = " ".join(sys.argv)[:120]
                message = str(unraisable.exc_value).splitlines()[0] if str(unraisable.exc_value) else ""
                found_in = repr(unraisable.object)[:80] if unraisable.object is not None else ""
                where = f" in {found_in}" if found_in and found_in not in message else ""
                line = f"pid {os.getpid()} ({argv}): {type(unraisable.exc_value).__name__}: {message}{where}"
                with open(os.path.join(folder, f"{os.getpid()}.txt"), "a", encoding="utf-8") as record:
                    record.write(line.replace("\n", " ") + "\n")
            except Exception:  # at interpreter shutdown anything may be gone; the warning is still printed
                pass
        previous(unraisable)

    sys.unraisablehook = hook


if os.environ.get("HARNESS_TEST_UNRAISABLE"):
    _record_finalizer_warnings(os.environ["HARNESS_TEST_UNRAISABLE"])
