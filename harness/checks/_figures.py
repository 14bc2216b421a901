"""A measured figure next to its bound: what every check of the harness prints and records.

A figure is either a check of the system (it holds or the system deviated) or evidence (``evidence=True``):
what the harness itself had to produce for the checks beside it to mean anything (calls in the window, the
share of the offered traffic achieved, its own timing lag). Evidence that does not hold makes those checks
inconclusive, never deviated: ``judge`` is the one place that rule is written.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from harness.verdict import Verdict


class Comparison(enum.StrEnum):
    AT_MOST = "<="
    AT_LEAST = ">="
    EXACTLY = "=="


class Figure(BaseModel):
    """``measured`` must compare to ``bound`` as ``comparison`` says; without a measurement it fails
    (a check that saw nothing proved nothing), without a bound it is shown for information only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    measured: float | None
    bound: float | None = None
    comparison: Comparison = Comparison.AT_MOST
    unit: str = ""
    detail: str = ""
    evidence: bool = False
    """What the harness had to produce (not a property of the system): too little makes it inconclusive."""

    @property
    def holds(self) -> bool:
        if self.bound is None:
            return True
        if self.measured is None:
            return False
        match self.comparison:
            case Comparison.AT_MOST:
                return self.measured <= self.bound
            case Comparison.AT_LEAST:
                return self.measured >= self.bound
            case Comparison.EXACTLY:
                return self.measured == self.bound

    def line(self) -> str:
        """``name: measured (bound <= 3 s) ok`` in one line, for terminals and journals."""
        measured = "none" if self.measured is None else f"{self.measured:g}{self.unit}"
        bound = "" if self.bound is None else f" (bound {self.comparison.value} {self.bound:g}{self.unit})"
        verdict = "" if self.bound is None else f" {self.mark}"
        detail = f"; {self.detail}" if self.detail else ""
        return f"{self.name}: {measured}{bound}{verdict}{detail}"

    @property
    def mark(self) -> str:
        """``ok``, ``FAILED`` (a check that did not hold) or ``TOO THIN`` (evidence that did not)."""
        if self.holds:
            return "ok"
        return "TOO THIN" if self.evidence else "FAILED"


def judge(figures: Iterable[Figure]) -> Verdict:
    """Evidence first: any evidence that does not hold makes the figures inconclusive; otherwise they
    deviated when a check did not hold, and held when every one did."""
    shown = list(figures)
    if any(f.evidence and not f.holds for f in shown):
        return Verdict.INCONCLUSIVE
    return Verdict.HELD if all(f.holds for f in shown) else Verdict.DEVIATED
