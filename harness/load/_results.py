"""The machine-readable result of a load run (``results.json``, with a schema version), read back as the
baseline of a later run."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import ConfigError
from harness.load._stats import EndpointStats, FailureRow, HistoryRow
from harness.report import FigureSection
from harness.verdict import Verdict

RESULTS_VERSION = 2  # 2: verdicts held / deviated / inconclusive, evidence figures


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstanceEvidence(_Model):
    """The judged caller's attempts to one instance during the run, from two witnesses."""

    instance: str
    attempts: int  # attempt events on the timeline
    failed: int
    metrics_attempts: int | None  # the difference of the caller's /metrics counters, before and after
    share: float
    expected_share: float | None


class LocustInfo(_Model):
    version: str
    command: list[str]
    workers: int


class LoadResults(_Model):
    schema_version: int = RESULTS_VERSION
    profile: str
    profile_path: str
    title: str
    verdict: Verdict
    started: datetime
    ended: datetime
    target: str
    locust: LocustInfo
    offered_rate: float | None
    achieved_rate: float
    achieved_ratio: float | None
    coordinated_omission: bool
    total: EndpointStats
    endpoints: list[EndpointStats]
    failures: list[FailureRow]
    history: list[HistoryRow]
    faults: list[str]
    evidence: list[InstanceEvidence]
    sections: list[FigureSection]
    failed: list[str]
    inconclusive: list[str]
    warnings: list[str]
    baseline: str | None = None

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> LoadResults:
        """An earlier run's results; a missing, unreadable or other-version file is one ConfigError."""
        try:
            text = path.read_text(encoding="utf-8")
            version = json.loads(text).get("schema_version")
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(f"--baseline {path}: not a load results file ({exc})") from exc
        if version != RESULTS_VERSION:
            raise ConfigError(
                f"--baseline {path}: results schema {version}, this harness reads {RESULTS_VERSION}"
            )
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ConfigError(
                f"--baseline {path}: not a load results file ({where}: {first['msg']})"
            ) from exc
