"""``harness check saga`` as a user runs it: progress, the verdict table, the report, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._run import harness


@pytest.mark.behaviour("harness.saga_check", "saga.invariants")
def test_a_small_run_prints_every_check_and_passes(tmp_path: Path) -> None:
    """Exit 0, one line per check with measured and bound, and result.json in the report folder."""
    flags = ["--orders", "30", "--kills", "1", "--seed", "5", "--rate", "15"]
    where = ["--workdir", str(tmp_path / "stack"), "--report", str(tmp_path / "report")]
    done = harness("check", "saga", *flags, *where, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "notified, then compensated" in done.stdout
    assert "acknowledged but missing" in done.stdout
    assert "(1 orchestrator kills)" in done.stdout
    result = json.loads((tmp_path / "report" / "result.json").read_text())
    assert result["schema_version"] == 1
    assert all(f["measured"] <= f["bound"] for f in result["figures"])


@pytest.mark.behaviour("harness.saga_check", "harness.exit_codes")
def test_a_used_workdir_is_refused_in_one_line(tmp_path: Path) -> None:
    """The check needs a fresh stack: a non-empty workdir is a configuration error (exit 2)."""
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "leftover").write_text("x")
    done = harness("check", "saga", "--orders", "5", "--workdir", str(tmp_path / "stack"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"harness: error: workdir {tmp_path / 'stack'} is not empty; the check needs a fresh stack"
    ]


@pytest.mark.behaviour("harness.saga_check", "harness.exit_codes")
def test_bad_numbers_are_usage_errors(tmp_path: Path) -> None:
    done = harness("check", "saga", "--orders", "0")
    assert done.returncode == 2
    assert "--orders" in done.stderr
