"""The three verdicts of a run, and the one map from how a command ended to its exit code.

- **held**: the evidence was sufficient and every check held;
- **deviated**: the evidence was sufficient and a check did not hold: the system is not what it claims;
- **inconclusive**: the harness could not produce the evidence a check needs (too few calls, too little
  of the offered traffic, its own timing too coarse on a busy machine), so it judged nothing.

A busy CI runner must never report a healthy system as deviated: a check judges its evidence first.

Exit codes are the same for every command: ``ExitCode``, with what each means in ``MEANINGS`` (shown by
``harness --help``; docs/verdicts.md).
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterable

INCONCLUSIVE_MARK = "INCONCLUSIVE:"
"""Leads the failure message of a test whose run was inconclusive (``harness.testing``), so that tools
reading test results (``harness pyramid --mutants``) never count it as a deviation."""


class ExitCode(enum.IntEnum):
    HELD = 0
    DEVIATED = 1
    USAGE = 2
    ENVIRONMENT = 3
    INCONCLUSIVE = 4
    SIGINT = 130
    SIGTERM = 143

    @classmethod
    def interrupted_by(cls, signum: int) -> ExitCode:
        """130 for SIGINT, 143 for SIGTERM (128 + the signal, as shells report it)."""
        return cls.SIGTERM if signum == signal.SIGTERM else cls.SIGINT


class Verdict(enum.StrEnum):
    HELD = "held"
    DEVIATED = "deviated"
    INCONCLUSIVE = "inconclusive"

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self]

    @classmethod
    def of(cls, verdicts: Iterable[Verdict]) -> Verdict:
        """A run's verdict from its checks': any deviation (judged on sufficient evidence) deviates the run;
        otherwise any inconclusive check makes it inconclusive; otherwise it held (also when empty)."""
        seen = set(verdicts)
        if cls.DEVIATED in seen:
            return cls.DEVIATED
        return cls.INCONCLUSIVE if cls.INCONCLUSIVE in seen else cls.HELD


MEANINGS = {
    ExitCode.HELD: "held",
    ExitCode.DEVIATED: "deviated",
    ExitCode.USAGE: "bad input or usage (a flag, a file, a value the fault proxy refuses)",
    ExitCode.ENVIRONMENT: "environment unavailable (the stack, the fault proxy, Locust, a server)",
    ExitCode.INCONCLUSIVE: "inconclusive (the harness could not produce the evidence)",
    ExitCode.SIGINT: "interrupted by SIGINT (Ctrl-C), after cleanup",
    ExitCode.SIGTERM: "stopped by SIGTERM, after cleanup",
}

_EXIT = {
    Verdict.HELD: ExitCode.HELD,
    Verdict.DEVIATED: ExitCode.DEVIATED,
    Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
}
