"""The three verdicts of a run, and the one map from how a command ended to its exit code.

- **held**: the evidence was sufficient and every check held;
- **deviated**: the evidence was sufficient and a check did not hold: the system is not what it claims;
- **inconclusive**: the harness could not produce the evidence a check needs (too few calls, too little
  of the offered traffic, its own timing too coarse on a busy machine), so it judged nothing.

A busy CI runner must never report a healthy system as deviated: a check judges its evidence first.

Exit codes, the same for every command (``harness --help`` and docs/verdicts.md say so once):

====  =============================================================
0     held
1     deviated
2     bad input or usage (a flag, a file, a value the proxy refuses)
3     environment unavailable (the stack, the proxy, Locust, a server)
4     inconclusive
130   interrupted by SIGINT (Ctrl-C)
143   stopped by SIGTERM
====  =============================================================
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


_EXIT = {
    Verdict.HELD: ExitCode.HELD,
    Verdict.DEVIATED: ExitCode.DEVIATED,
    Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
}
