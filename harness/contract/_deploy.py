"""can-i-deploy: may this service go out, given the committed pacts and the recorded verifications? (pure)

A service may be deployed when every pact it takes part in, as consumer or provider, has a passing
verification of the pact's current version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.contract._pacts import PactFile
from harness.contract._results import PactResult
from harness.errors import ConfigError


@dataclass(frozen=True)
class DeployAnswer:
    """The answer, with the pacts that vouch for the service and those that block it."""

    service: str
    verified: tuple[str, ...]
    blockers: tuple[str, ...]

    @property
    def deployable(self) -> bool:
        return not self.blockers


def can_i_deploy(service: str, pacts: Sequence[PactFile], results: Sequence[PactResult]) -> DeployAnswer:
    """Check every pact naming ``service``; ConfigError when no committed pact names it."""
    involved = [p for p in pacts if service in (p.consumer, p.provider)]
    if not involved:
        known = sorted({p.consumer for p in pacts} | {p.provider for p in pacts})
        raise ConfigError(f"no committed pact names {service!r}; services with pacts: {', '.join(known)}")
    latest = {(r.consumer, r.provider): r for r in results}
    verified: list[str] = []
    blockers: list[str] = []
    for pact in sorted(involved, key=lambda p: (p.consumer, p.provider)):
        result = latest.get((pact.consumer, pact.provider))
        if result is None:
            blockers.append(f"{pact.pair} ({pact.path.name}): never verified")
        elif result.pact_sha256 != pact.sha256:
            blockers.append(f"{pact.pair} ({pact.path.name}): verified only for an older version of the pact")
        elif not result.passed:
            failing = [i.label for i in result.failed]
            detail = (
                f"{len(failing)} failing interaction(s): {'; '.join(failing)}" if failing else result.error
            )
            blockers.append(f"{pact.pair} ({pact.path.name}): verification failed, {detail}")
        else:
            verified.append(f"{pact.pair}: {len(result.interactions)} interaction(s) verified")
    return DeployAnswer(service, tuple(verified), tuple(blockers))
