"""The Jepsen-style saga check, short: orders under random toxics on the participants and orchestrator
kills, judged from the history and the three databases. Every anomaly count must be zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks._history import OrderCall
from harness.checks._saga_run import SagaCheckConfig, run_saga_check


@pytest.mark.behaviour("saga.invariants", "saga.crash_recovery", "harness.fault_schedule")
def test_orders_keep_every_promise_under_toxics_and_orchestrator_kills(tmp_path: Path) -> None:
    """150 orders, 2 SIGKILLs, random latency/timeout/reset/partition windows: nothing stuck, lost,
    doubled or notified-then-compensated, and credit is conserved."""
    config = SagaCheckConfig(orders=150, kills=2, seed=3, rate=20.0)
    report = tmp_path / "report"
    result = run_saga_check(config, workdir=tmp_path / "stack", report_dir=report, progress=print)
    for figure in result.figures:
        print(f"{figure.name}: {figure.measured} (bound {figure.bound})")
    print(f"calls {result.calls}, final states {result.final_states}, wall {result.wall_seconds}s")
    assert result.kills_applied == 2
    assert result.faults_applied > result.kills_applied  # toxics and partitions really ran
    assert sum(result.calls.values()) == 150
    assert [f"{f.name}: {f.measured} > {f.bound}" for f in result.figures if not f.holds] == []
    assert result.anomalies == []
    lines = (report / "history.jsonl").read_text().splitlines()
    history = [OrderCall.model_validate_json(line) for line in lines]
    assert len(history) == 300  # every order placed once and replayed once
    saved = json.loads((report / "schedule.json").read_text())
    assert saved["seed"] == 3
