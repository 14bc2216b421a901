"""The contract errors, under the harness's one root, each carrying the facts a caller needs.

HarnessError
└── ContractError                 a contract could not be read, kept current or verified
    ├── PactFileError         2   a pact file is missing or not a pact
    ├── StaleContract         1   consumer tests produced a pact that differs from the committed one
    ├── VerificationFailed    1   a provider did not honour a pact
    ├── DeployBlocked         1   can-i-deploy: a pact of the service is failing or unverified
    └── NoVerificationResults 3   can-i-deploy: nothing was recorded to answer from
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.errors import HarnessError
from harness.verdict import ExitCode


class ContractError(HarnessError):
    """A contract could not be read, kept current or verified."""


class PactFileError(ContractError):
    """A pact file is missing, unreadable or not a pact."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class StaleContract(ContractError):
    """The consumer tests produced pacts that differ from the committed ones (``files`` names them)."""

    exit_code = ExitCode.DEVIATED

    def __init__(self, message: str, *, files: Sequence[str]) -> None:
        super().__init__(message)
        self.files = tuple(files)


class VerificationFailed(ContractError):
    """At least one provider did not honour a pact (``failing`` names ``consumer -> provider`` pairs)."""

    exit_code = ExitCode.DEVIATED

    def __init__(self, message: str, *, failing: Sequence[str]) -> None:
        super().__init__(message)
        self.failing = tuple(failing)


class DeployBlocked(ContractError):
    """A pact the service takes part in is failing, or has no verification of its current version."""

    exit_code = ExitCode.DEVIATED

    def __init__(self, message: str, *, service: str, blockers: Sequence[str]) -> None:
        super().__init__(message)
        self.service = service
        self.blockers = tuple(blockers)


class NoVerificationResults(ContractError):
    """No verification results were recorded where can-i-deploy looks."""

    exit_code = ExitCode.ENVIRONMENT

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path
