"""``harness contract verify`` and ``can-i-deploy`` as a user runs them (click's CliRunner, in process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness._contract_cli import contract
from harness.contract import ProviderTarget, read_results
from harness.discovery import REGISTRY_TOKEN_ENV, REGISTRY_TOKEN_HEADER

from .._support import CONTRACTS


def urls(providers: dict[str, ProviderTarget]) -> list[str]:
    return [arg for name, t in sorted(providers.items()) for arg in ("--url", f"{name}={t.url}")]


@pytest.fixture(autouse=True)
def registry_token(providers: dict[str, ProviderTarget], monkeypatch: pytest.MonkeyPatch) -> None:
    """The running registry's write token, where `contract verify --url registry=...` reads it."""
    monkeypatch.setenv(REGISTRY_TOKEN_ENV, dict(providers["registry"].headers)[REGISTRY_TOKEN_HEADER])


@pytest.mark.behaviour("contract.can_i_deploy")
def test_verify_prints_the_matrix_and_records_results(
    providers: dict[str, ProviderTarget], tmp_path: Path
) -> None:
    """Every committed pact verified against the running providers; can-i-deploy then says yes."""
    results = tmp_path / "results.json"
    run = CliRunner().invoke(contract, ["verify", "--results", str(results), *urls(providers)])
    assert run.exit_code == 0, run.output
    assert "consumer \\ provider" in run.output
    assert (
        "  PASS  a request to reserve credit while users sheds load (given users is shedding load)"
        in run.output
    )
    recorded = read_results(results)
    assert {r.pair for r in recorded.results} == {
        f"{p.stem.split('-')[0]} -> {p.stem.split('-')[1]}" for p in CONTRACTS.glob("*.json")
    }
    for service in ("users", "notifications", "registry", "orchestrator", "harness"):
        answer = CliRunner().invoke(contract, ["can-i-deploy", service, "--results", str(results)])
        assert answer.exit_code == 0, answer.output
        assert f"yes: {service} can be deployed" in answer.output


@pytest.mark.behaviour("contract.can_i_deploy")
def test_verify_starts_the_providers_it_is_not_given(tmp_path: Path) -> None:
    """Without --url, the provider is started in test mode under --stack-workdir, and stopped after."""
    results, workdir = tmp_path / "results.json", tmp_path / "stack"
    run = CliRunner().invoke(
        contract,
        ["verify", "--provider", "notifications", "--results", str(results), "--stack-workdir", str(workdir)],
    )
    assert run.exit_code == 0, run.output
    assert "starting notifications (test mode)" in run.output
    assert (workdir / "logs" / "notifications.log").exists()
    assert {r.provider for r in read_results(results).results} == {"notifications"}


@pytest.mark.behaviour("contract.can_i_deploy", "harness.exit_codes")
def test_can_i_deploy_without_results_is_exit_3(tmp_path: Path) -> None:
    answer = CliRunner().invoke(contract, ["can-i-deploy", "users", "--results", str(tmp_path / "none.json")])
    assert answer.exit_code == 3
    assert "no verification results" in answer.output


@pytest.mark.behaviour("contract.can_i_deploy")
def test_can_i_deploy_with_an_unverified_pact_is_exit_1(
    tmp_path: Path, providers: dict[str, ProviderTarget]
) -> None:
    """Only registry was verified: users still has unverified pacts, and they are named."""
    results = tmp_path / "results.json"
    verify = ["verify", "--provider", "registry", "--results", str(results), *urls(providers)]
    assert CliRunner().invoke(contract, verify).exit_code == 0
    answer = CliRunner().invoke(contract, ["can-i-deploy", "users", "--results", str(results)])
    assert answer.exit_code == 1
    assert "blocked  orchestrator -> users (orchestrator-users.json): never verified" in answer.output
    assert "ok       users -> registry" in answer.output
