"""`harness up --orders N` with many orders, and what its status line says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._run import harness


@pytest.mark.behaviour("harness.up", "saga.completes")
def test_many_orders_show_progress_and_a_summary_and_all_complete(tmp_path: Path) -> None:
    """30 orders over three customers with enough credit: progress lines and a summary instead of a line
    per order, every order COMPLETED; the status line counts healthy instances and open breakers."""
    flags = ["--orders", "30", "--for", "0.5", "--status-interval", "0.2"]
    done = harness("up", "--workdir", str(tmp_path), *flags, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "-> COMPLETED" not in out  # no line per order
    progress = re.findall(r"^  (\d+)/30 in [\d.]+s: \d+ COMPLETED$", out, re.MULTILINE)
    assert progress == [str(n) for n in range(3, 31, 3)], out  # every tenth of the orders
    assert re.search(r"^30 orders in [\d.]+s: 30 COMPLETED$", out, re.MULTILINE), out
    status = [line for line in out.splitlines() if "| orders " in line]
    assert status, out
    assert "users 3/3 (3 healthy)" in status[-1]
    assert "open breakers: none" in status[-1]
    assert "orders 30 COMPLETED" in status[-1]
