"""Every committed pact verified against its real provider process: HTTP interactions and messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contract import ProviderTarget, load_pact, render_interactions, verify_pact

from .._support import CONTRACTS

PACT_FILES = sorted(CONTRACTS.glob("*.json"))


@pytest.mark.behaviour(
    by_id={
        "harness-notifications": "contract.harness-notifications",
        "harness-toxiproxy": "contract.harness-toxiproxy",
        "harness-users": "contract.harness-users",
        "notifications-registry": "contract.notifications-registry",
        "notifications-users": "contract.notifications-users",
        "orchestrator-notifications": "contract.orchestrator-notifications",
        "orchestrator-registry": "contract.orchestrator-registry",
        "orchestrator-users": "contract.orchestrator-users",
        "users-notifications": "contract.users-notifications",
        "users-registry": "contract.users-registry",
    }
)
@pytest.mark.parametrize("pact_file", [pytest.param(p, id=p.stem) for p in PACT_FILES])
def test_provider_honours_pact(pact_file: Path, providers: dict[str, ProviderTarget]) -> None:
    """Each interaction is replayed after its provider state is set; every one must match."""
    pact = load_pact(pact_file)
    if pact.provider not in providers:
        pytest.fail(f"{pact_file.name}: no provider {pact.provider!r} is started for verification")
    result = verify_pact(pact, providers[pact.provider])
    assert result.passed, render_interactions([pact], [result]) + "\n\n" + result.output
