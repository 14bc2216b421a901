"""Consumer-driven contracts: keep pacts current, verify them against real providers, answer can-i-deploy.

Consumer tests write pacts with pact-python; ``check_contracts`` keeps ``contracts/`` current;
``run_verification`` replays them against providers started in test mode; ``can_i_deploy`` reads results.
"""

from harness.contract._callbacks import CallbackServer, ProducedMessage
from harness.contract._deploy import DeployAnswer, can_i_deploy
from harness.contract._errors import (
    ContractError,
    DeployBlocked,
    NoVerificationResults,
    PactFileError,
    StaleContract,
    VerificationFailed,
)
from harness.contract._matrix import render_interactions, render_matrix
from harness.contract._pacts import PactFile, PactInteraction, load_pact, load_pacts, normalise, render
from harness.contract._providers import PROVIDERS, provider_target, running_providers
from harness.contract._results import (
    DEFAULT_RESULTS,
    InteractionResult,
    PactResult,
    VerificationRecord,
    read_results,
    record_results,
)
from harness.contract._runner import DEFAULT_CONTRACTS, VerificationRun, run_verification, verify_contracts
from harness.contract._staleness import ContractDifference, DifferenceKind, check_contracts, compare_contracts
from harness.contract._verify import ProviderTarget, verify_pact

__all__ = [
    "DEFAULT_CONTRACTS",
    "DEFAULT_RESULTS",
    "PROVIDERS",
    "CallbackServer",
    "ContractDifference",
    "ContractError",
    "DeployAnswer",
    "DeployBlocked",
    "DifferenceKind",
    "InteractionResult",
    "NoVerificationResults",
    "PactFile",
    "PactFileError",
    "PactInteraction",
    "PactResult",
    "ProducedMessage",
    "ProviderTarget",
    "StaleContract",
    "VerificationFailed",
    "VerificationRecord",
    "VerificationRun",
    "can_i_deploy",
    "check_contracts",
    "compare_contracts",
    "load_pact",
    "load_pacts",
    "normalise",
    "provider_target",
    "read_results",
    "record_results",
    "render",
    "render_interactions",
    "render_matrix",
    "run_verification",
    "running_providers",
    "verify_contracts",
    "verify_pact",
]
