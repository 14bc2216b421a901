"""`harness up` and `harness status` as a user runs them: the whole stack, orders, a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._children import reap, reaped
from tests.e2e._run import harness


def pids_in(output: str) -> list[int]:
    """The pid column of the table `harness up` prints: service, instance, URL, proxy, pid."""
    rows = [line.split() for line in output.splitlines()]
    return [
        int(row[4]) for row in rows if len(row) == 5 and row[2].startswith("http://") and row[4].isdigit()
    ]


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.behaviour("harness.up")
class TestUp:
    def test_up_places_orders_and_stops_cleanly(self, tmp_path: Path) -> None:
        """Start (fault proxy + six services), three orders COMPLETED, stop on time, nothing left."""
        result = harness("up", "--workdir", str(tmp_path), "--orders", "3", "--for", "0.5")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "processes ready in" in result.stdout
        pids = pids_in(result.stdout)
        assert len(pids) == 7
        assert result.stdout.count("-> COMPLETED") == 3
        assert "stopped 7 processes" in result.stdout
        assert all(gone(pid) for pid in pids)
        assert not (tmp_path / "stack.json").exists()

    def test_status_while_running_then_sigterm_stops_everything(self, tmp_path: Path) -> None:
        """`harness status` sees seven healthy processes, then a crashed one; SIGTERM stops everything."""
        output_file = tmp_path / "up.out"
        with output_file.open("w") as sink:
            up = subprocess.Popen(
                [sys.executable, "-m", "harness", "up", "--workdir", str(tmp_path),
                 "--status-interval", "0.2"],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            state = tmp_path / "stack.json"
            deadline = time.monotonic() + 60.0
            while not state.exists() and up.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert state.exists(), "harness up did not come up"
            pids = [item["pid"] for item in json.loads(state.read_text())["instances"]]
            status = harness("status", "--workdir", str(tmp_path))
            assert status.returncode == 0, status.stdout + status.stderr
            rows = [line.split() for line in status.stdout.splitlines()[1:]]
            processes = ["toxiproxy", "registry", "users-1", "users-2", "users-3"]
            processes += ["notifications-1", "orchestrator-1"]
            assert {row[1]: row[-1] for row in rows} == dict.fromkeys(processes, "ok")
            crashed = next(
                item for item in json.loads(state.read_text())["instances"] if item["name"] == "users-2"
            )
            os.kill(crashed["pid"], signal.SIGKILL)
            after_crash = harness("status", "--workdir", str(tmp_path))
            assert after_crash.returncode == 1
            assert "users-2" in after_crash.stderr
            deadline = time.monotonic() + 10.0
            while (
                "users-2 exited with code -9" not in output_file.read_text() and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            os.kill(up.pid, signal.SIGTERM)
            up.wait(timeout=30)
        finally:
            reap(up)
        output = output_file.read_text()
        assert up.returncode == 143, output  # stopped by SIGTERM, cleanly
        assert "users-2 exited with code -9" in output
        assert all(gone(pid) for pid in pids)
        after = harness("status", "--workdir", str(tmp_path))
        assert after.returncode == 3
        assert "no stack is running" in after.stderr

    @pytest.mark.behaviour("proxy.supervised")
    def test_a_sigkilled_fault_proxy_is_restarted_and_shown(self, tmp_path: Path) -> None:
        """SIGKILL the fault proxy under `harness up`: a line says it restarted; `status` is all ok again."""
        output_file = tmp_path / "up.out"
        with output_file.open("w") as sink:
            up = subprocess.Popen(
                [sys.executable, "-m", "harness", "up", "--workdir", str(tmp_path),
                 "--status-interval", "0.2"],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            state = tmp_path / "stack.json"
            deadline = time.monotonic() + 60.0
            while not state.exists() and up.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert state.exists(), "harness up did not come up"
            pids = {item["name"]: item["pid"] for item in json.loads(state.read_text())["instances"]}
            os.kill(pids["toxiproxy"], signal.SIGKILL)
            deadline = time.monotonic() + 15.0
            while "fault proxy restarted in" not in output_file.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            restarted = {item["name"]: item["pid"] for item in json.loads(state.read_text())["instances"]}
            status = harness("status", "--workdir", str(tmp_path))
            os.kill(up.pid, signal.SIGTERM)
            up.wait(timeout=30)
        finally:
            reap(up)
        output = output_file.read_text()
        assert up.returncode == 143, output  # stopped by SIGTERM, cleanly
        assert "! toxiproxy exited with code -9" in output
        assert "fault proxy restarted in" in output
        assert "fault proxy restarted 1x" in output
        assert restarted["toxiproxy"] != pids["toxiproxy"]
        assert status.returncode == 0, status.stdout + status.stderr
        assert all(gone(pid) for pid in [*pids.values(), restarted["toxiproxy"]])

    @pytest.mark.behaviour("harness.exit_codes")
    def test_bad_topology_is_a_one_line_config_error(self, tmp_path: Path) -> None:
        """An unknown service in the topology: exit 2, one line naming it."""
        topology = tmp_path / "topology.toml"
        topology.write_text("[services.payments]\ninstances = 2\n")
        result = harness("up", "--topology", str(topology), "--workdir", str(tmp_path))
        assert result.returncode == 2
        assert "payments" in result.stderr
        assert result.stderr.count("\n") == 1

    def test_sigkilled_harness_leaves_no_orphans(self, tmp_path: Path) -> None:
        """Even SIGKILL of `harness up` (no cleanup possible) takes every service process down with it."""
        up = subprocess.Popen(
            [sys.executable, "-m", "harness", "up", "--workdir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        with reaped(up):
            state = tmp_path / "stack.json"
            deadline = time.monotonic() + 60.0
            while not state.exists() and up.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert state.exists(), "harness up did not come up"
            pids = [item["pid"] for item in json.loads(state.read_text())["instances"]]
            up.kill()
            up.wait()
        deadline = time.monotonic() + 15.0
        while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in pids if not gone(pid)] == []
