"""What a report is made of: the typed input every run (chaos, load, pyramid, run) hands to the renderer.

A boundary, so pydantic with ``extra="forbid"``: a report input can be saved as JSON next to the HTML and
rendered again later. Verdicts are computed from the figures and probes, never passed in as text.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.checks._figures import Figure, judge
from harness.timeline import Timeline
from harness.verdict import Verdict

ProbeValue = str | int | float | bool | None


class ReportKind(enum.StrEnum):
    CHAOS = "chaos"
    LOAD = "load"
    PYRAMID = "pyramid"
    RUN = "run"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _aware(moment: datetime) -> datetime:
    """A time without a zone is UTC (Chaos Toolkit's journal writes them so); all times compare."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class FigureSection(_Model):
    """One table of figures, each measured next to its bound (e.g. one breaker under one fault)."""

    title: str
    figures: list[Figure]
    note: str = ""

    @property
    def holds(self) -> bool:
        return all(f.holds for f in self.figures)

    @property
    def verdict(self) -> Verdict:
        """Evidence first (``judge``): inconclusive when the harness could not produce what it needed."""
        return judge(self.figures)


class ProbeResult(_Model):
    """One probe of the steady-state hypothesis in one phase: its value and whether it held."""

    name: str
    value: ProbeValue = None
    tolerance: str = ""
    held: bool


class Hypothesis(_Model):
    """The steady-state hypothesis checked before the method, after it, and again after cleanup.

    ``None`` for a phase that did not run (e.g. a run aborted before the method ended)."""

    title: str
    before: list[ProbeResult]
    after: list[ProbeResult] | None = None
    after_cleanup: list[ProbeResult] | None = None

    @property
    def holds(self) -> bool:
        phases = [self.before, self.after, self.after_cleanup]
        return all(p.held for phase in phases if phase is not None for p in phase)


class ActivityKind(enum.StrEnum):
    ACTION = "action"
    PROBE = "probe"


class ActivityStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"


class Activity(_Model):
    """One action or probe of an experiment's method or rollbacks, as it ran."""

    name: str
    kind: ActivityKind
    start: datetime
    end: datetime
    status: ActivityStatus
    output: str = ""
    """A short summary of what it returned or raised."""
    background: bool = False

    _zoned = field_validator("start", "end")(_aware)

    @model_validator(mode="after")
    def _ordered(self) -> Activity:
        if self.end < self.start:
            raise ValueError(f"activity {self.name!r} ends before it starts")
        return self

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


class Metadata(_Model):
    """Where a report comes from: enough to replay the run (seed, version, commit, command)."""

    seed: int | None = None
    harness_version: str
    commit: str
    command: str
    started: datetime
    ended: datetime

    _zoned = field_validator("started", "ended")(_aware)


class Link(_Model):
    """A link to another report or artefact: a relative path, or an http(s) URL given on purpose."""

    title: str
    href: str

    @field_validator("href")
    @classmethod
    def _safe(cls, href: str) -> str:
        scheme = urlsplit(href).scheme.lower()
        if scheme not in ("", "http", "https"):
            raise ValueError(f"link {href!r}: only relative paths and http(s) URLs are allowed")
        return href


class Note(_Model):
    """Free text for the reader (e.g. how latency is measured); blank lines separate paragraphs."""

    title: str
    text: str


class Table(_Model):
    """A plain table of text cells (e.g. the pyramid's behaviour x level matrix)."""

    title: str
    columns: list[str]
    rows: list[list[str]]

    @model_validator(mode="after")
    def _rectangular(self) -> Table:
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {index} has {len(row)} cells, expected {len(self.columns)}"
                )
        return self


class ReportInput(_Model):
    """Everything one report shows; only ``title``, ``kind`` and ``metadata`` are required."""

    title: str
    kind: ReportKind
    metadata: Metadata
    summary: str = ""
    timeline: Timeline | None = None
    sections: list[FigureSection] = Field(default_factory=list)
    hypothesis: Hypothesis | None = None
    activities: list[Activity] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)

    verdict_given: Verdict | None = None
    """The run's own verdict, when it judged more than the figures show (a chaos run's probes)."""
    judged: bool = True
    """False for a run that stopped before its verdict (interrupted, a fault not applied): not judged."""

    @property
    def verdict(self) -> Verdict | None:
        """The run's verdict (given, or from the sections and hypothesis); None when nothing was judged."""
        if not self.judged:
            return None
        if self.verdict_given is not None:
            return self.verdict_given
        judged = [s.verdict for s in self.sections if s.figures]
        if self.hypothesis is not None:
            judged.append(Verdict.HELD if self.hypothesis.holds else Verdict.DEVIATED)
        return Verdict.of(judged) if judged else None
