"""A measured figure next to its bound: what every check of the harness prints and records."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict


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
        verdict = "" if self.bound is None else (" ok" if self.holds else " FAILED")
        detail = f"; {self.detail}" if self.detail else ""
        return f"{self.name}: {measured}{bound}{verdict}{detail}"
