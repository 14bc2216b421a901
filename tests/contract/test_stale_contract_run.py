"""End to end: a consumer test run whose pact differs from the committed one fails, naming file and diff.

The consumer tests run in a child pytest against a copy of ``contracts/`` with one committed expectation
changed, so the real files are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import REPO_ROOT

PACT = "orchestrator-notifications.json"
TESTS = "tests/contract/consumer/test_orchestrator_notifications.py"


def run_consumer_tests(
    contracts: Path, basetemp: Path, *, update: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_TEST_CONTRACTS_DIR": str(contracts), "PACT_DO_NOT_TRACK": "true"}
    env.pop("UPDATE_CONTRACTS", None)
    if update:
        env["UPDATE_CONTRACTS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", TESTS, "-q", "-p", "no:randomly", f"--basetemp={basetemp}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.behaviour("contract.stale_pact")
def test_changed_contract_fails_naming_file_and_difference(tmp_path: Path) -> None:
    """Exit 1, with the file, the differing lines and how to update (the update itself: test_staleness)."""
    contracts = tmp_path / "contracts"
    shutil.copytree(REPO_ROOT / "contracts", contracts)
    committed = (contracts / PACT).read_text(encoding="utf-8")
    assert '"status": 201' in committed
    (contracts / PACT).write_text(committed.replace('"status": 201', '"status": 202'), encoding="utf-8")

    stale = run_consumer_tests(contracts, tmp_path / "run")
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert f"{PACT} would change" in stale.stdout
    assert '-        "status": 202' in stale.stdout
    assert '+        "status": 201' in stale.stdout
    assert "UPDATE_CONTRACTS=1" in stale.stdout
