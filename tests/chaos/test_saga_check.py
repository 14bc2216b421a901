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
    """150 orders, 2 SIGKILLs, random latency/timeout/reset/partition windows and requests or answers
    cut mid-message: nothing stuck, lost, doubled or notified-then-compensated, credit is conserved, and
    no saga needs attention (a broken connection is never a refusal)."""
    config = SagaCheckConfig(orders=150, kills=2, seed=3, rate=20.0)
    report = tmp_path / "report"
    result = run_saga_check(config, workdir=tmp_path / "stack", report_dir=report, progress=print)
    for figure in result.figures:
        print(f"{figure.name}: {figure.measured} (bound {figure.bound})")
    print(f"calls {result.calls}, final states {result.final_states}, wall {result.wall_seconds}s")
    assert result.kills_applied == 2
    assert result.faults_applied > result.kills_applied  # toxics and partitions really ran
    assert result.fault_failures == []  # every toxic, cuts included, was accepted by the proxy
    assert sum(result.calls.values()) == 150
    assert [f"{f.name}: {f.measured} > {f.bound}" for f in result.figures if not f.holds] == []
    assert result.anomalies == []
    lines = (report / "history.jsonl").read_text().splitlines()
    history = [OrderCall.model_validate_json(line) for line in lines]
    assert len(history) == 300  # every order placed once and replayed once
    saved = json.loads((report / "schedule.json").read_text())
    assert saved["seed"] == 3
    cuts = [w["fault"] for w in saved["windows"] if w["name"].startswith("c")]
    assert cuts, "no window cut a message mid-way"
    assert {(c["kind"], c["stream"]) for c in cuts} <= {
        ("limit_data", "upstream"), ("limit_data", "downstream"), ("slicer", "upstream"),
        ("reset_peer", "upstream")}  # fmt: skip
