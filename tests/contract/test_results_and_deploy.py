"""Recorded results, the consumer x provider matrix and can-i-deploy, on pacts and results made up here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.contract import (
    InteractionResult,
    NoVerificationResults,
    PactFile,
    PactInteraction,
    PactResult,
    can_i_deploy,
    read_results,
    record_results,
    render_interactions,
    render_matrix,
)
from harness.errors import ConfigError

RESERVE = PactInteraction(description="a request to reserve credit", states=("a user with available credit",))
HEARTBEAT = PactInteraction(description="a heartbeat", states=("a registered instance",))


def pact_file(consumer: str, provider: str, *interactions: PactInteraction, sha: str = "s1") -> PactFile:
    return PactFile(
        path=Path(f"contracts/{consumer}-{provider}.json"),
        consumer=consumer,
        provider=provider,
        interactions=interactions,
        sha256=sha,
    )


def result(pact: PactFile, *failing: str, sha: str | None = None) -> PactResult:
    interactions = tuple(
        InteractionResult(
            description=i.description,
            states=i.states,
            passed=i.description not in failing,
            mismatches=("BodyMismatch: $ -> Actual map is missing the following keys: available",)
            if i.description in failing
            else (),
        )
        for i in pact.interactions
    )
    return PactResult(
        consumer=pact.consumer,
        provider=pact.provider,
        pact_file=str(pact.path),
        pact_sha256=sha or pact.sha256,
        provider_url="http://127.0.0.1:1",
        verified_at=datetime.now(UTC),
        passed=not failing,
        interactions=interactions,
    )


ORCH_USERS = pact_file("orchestrator", "users", RESERVE)
USERS_REGISTRY = pact_file("users", "registry", HEARTBEAT)
PACTS = [ORCH_USERS, USERS_REGISTRY]


@pytest.mark.behaviour("contract.can_i_deploy")
class TestCanIDeploy:
    def test_yes_when_every_pact_of_the_service_passed(self) -> None:
        """users is provider of one pact and consumer of another: both verified and passing."""
        answer = can_i_deploy("users", PACTS, [result(ORCH_USERS), result(USERS_REGISTRY)])
        assert answer.deployable
        assert len(answer.verified) == 2

    def test_failing_interaction_blocks_naming_pact_and_interaction(self) -> None:
        answer = can_i_deploy("orchestrator", PACTS, [result(ORCH_USERS, "a request to reserve credit")])
        assert not answer.deployable
        assert answer.blockers == (
            "orchestrator -> users (orchestrator-users.json): verification failed, "
            "1 failing interaction(s): a request to reserve credit (given a user with available credit)",
        )

    def test_unverified_and_outdated_pacts_block(self) -> None:
        """No result, or a result about another version of the pact, vouches for nothing."""
        answer = can_i_deploy("users", PACTS, [result(ORCH_USERS, sha="old")])
        assert not answer.deployable
        assert [b.split(":")[1].strip() for b in answer.blockers] == [
            "verified only for an older version of the pact",
            "never verified",
        ]

    def test_unknown_service_is_a_usage_error(self) -> None:
        with pytest.raises(ConfigError, match="services with pacts: orchestrator, registry, users"):
            can_i_deploy("billing", PACTS, [])


@pytest.mark.behaviour("contract.can_i_deploy")
class TestRecord:
    def test_results_merge_per_pair_and_read_back(self, tmp_path: Path) -> None:
        path = tmp_path / "results.json"
        record_results(path, [result(ORCH_USERS, "a request to reserve credit"), result(USERS_REGISTRY)])
        record_results(path, [result(ORCH_USERS)])  # a later run of one provider replaces its result only
        record = read_results(path)
        assert [(r.pair, r.passed) for r in record.results] == [
            ("orchestrator -> users", True),
            ("users -> registry", True),
        ]

    def test_no_results_is_its_own_error(self, tmp_path: Path) -> None:
        with pytest.raises(NoVerificationResults) as caught:
            read_results(tmp_path / "missing.json")
        assert caught.value.exit_code == 3


@pytest.mark.behaviour("contract.can_i_deploy")
class TestMatrix:
    def test_cells_and_interaction_verdicts(self) -> None:
        """A cell per consumer and provider; every interaction with its verdict and mismatches."""
        results = [result(ORCH_USERS, "a request to reserve credit")]
        matrix = render_matrix(PACTS, results).splitlines()
        assert matrix[0].split() == ["consumer", "\\", "provider", "registry", "users"]
        assert matrix[2].split() == ["orchestrator", "-", "FAIL", "0/1"]
        assert matrix[3].split() == ["users", "not", "verified", "-"]
        details = render_interactions(PACTS, results)
        assert "  FAIL  a request to reserve credit (given a user with available credit)" in details
        assert "Actual map is missing the following keys: available" in details
        assert "users -> registry (users-registry.json): not verified" in details
