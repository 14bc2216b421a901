"""Recorded verification results: what each provider verification found, kept as JSON for can-i-deploy.

Each result names the pact by consumer, provider and the digest of its stable form, so a result about an
older version of a pact never vouches for the current one.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.contract._errors import NoVerificationResults

DEFAULT_RESULTS = Path(".harness/contracts/results.json")


class InteractionResult(BaseModel):
    """The verdict on one interaction, with the mismatches that made it fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    states: tuple[str, ...] = ()
    passed: bool
    mismatches: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        given = f" (given {', '.join(self.states)})" if self.states else ""
        return f"{self.description}{given}"


class PactResult(BaseModel):
    """One pact verified against one provider instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    consumer: str
    provider: str
    pact_file: str
    pact_sha256: str
    provider_url: str | None
    verified_at: datetime
    passed: bool
    interactions: tuple[InteractionResult, ...]
    error: str | None = Field(default=None, description="A failure that is not about one interaction.")
    output: str = Field(default="", description="The verifier's report (plain text).")

    @property
    def pair(self) -> str:
        return f"{self.consumer} -> {self.provider}"

    @property
    def failed(self) -> tuple[InteractionResult, ...]:
        return tuple(i for i in self.interactions if not i.passed)


class VerificationRecord(BaseModel):
    """The results file: the latest result per consumer and provider."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    results: list[PactResult] = Field(default_factory=list)

    def merged(self, new: list[PactResult]) -> VerificationRecord:
        """This record with ``new`` replacing earlier results for the same consumer and provider."""
        replaced = {(r.consumer, r.provider) for r in new}
        kept = [r for r in self.results if (r.consumer, r.provider) not in replaced]
        return VerificationRecord(results=sorted([*kept, *new], key=lambda r: (r.consumer, r.provider)))


def read_results(path: Path) -> VerificationRecord:
    """The recorded results; NoVerificationResults when there are none (or the file is unreadable)."""
    try:
        return VerificationRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise NoVerificationResults(
            f"no verification results at {path}; run `harness contract verify` first", path=path
        ) from exc
    except (OSError, ValidationError) as exc:
        raise NoVerificationResults(
            f"verification results at {path} are unreadable: {exc}", path=path
        ) from exc


def record_results(path: Path, new: list[PactResult]) -> VerificationRecord:
    """Merge ``new`` into the results at ``path`` (created if missing) and write them atomically."""
    try:
        record = read_results(path)
    except NoVerificationResults:
        record = VerificationRecord()
    record = record.merged(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return record
