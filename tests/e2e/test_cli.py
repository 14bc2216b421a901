"""The harness command as a user runs it: real subprocesses, real exit codes, real output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e._run import harness


@pytest.mark.behaviour(
    "harness.demo",
    "balancer.round_robin_shares",
    "breaker.opens",
    "breaker.rejects_while_open",
    "breaker.closes",
    "registry.health_check_eviction",
)
class TestDemo:
    def test_demo_passes_every_check_and_cleans_up(self, tmp_path: Path) -> None:
        """`harness demo` starts the processes, passes its checks, exits 0 and leaves no process behind."""
        result = harness("demo", "--workdir", str(tmp_path))
        assert result.returncode == 0, result.stdout + result.stderr
        checks = [line for line in result.stdout.splitlines() if line.strip().startswith(("PASS", "FAIL"))]
        assert len(checks) == 5
        assert all(line.strip().startswith("PASS") for line in checks)
        assert "round robin spreads calls evenly" in result.stdout
        pids = [int(line.split("pid")[1]) for line in result.stdout.splitlines() if " pid " in line]
        assert len(pids) == 4
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists()
        assert (tmp_path / "events" / "registry.jsonl").read_text().count(
            '"event":"registry.registered"'
        ) == 3


@pytest.mark.behaviour("harness.exit_codes")
class TestCommandLine:
    def test_help_lists_the_commands(self) -> None:
        """`harness --help` names every command."""
        result = harness("--help")
        assert result.returncode == 0
        for command in ("contract", "demo", "serve", "status", "toxiproxy", "up"):
            assert command in result.stdout

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            pytest.param(
                ("serve", "registry", "--host", "10.1.2.3"), "not a loopback address", id="remote-host"
            ),
            pytest.param(("serve", "echo", "--instance-id", "bad id"), "invalid instance-id", id="bad-name"),
            pytest.param(
                ("serve", "echo", "--registry", "http://10.1.2.3:8500"),
                "not a loopback address",
                id="remote-registry",
            ),
            pytest.param(
                ("toxiproxy", "--host", "192.168.1.1"), "not a loopback address", id="remote-toxiproxy"
            ),
            pytest.param(
                ("contract", "can-i-deploy", "payments", "--results", "/nonexistent/results.json"),
                "no committed pact names 'payments'",
                id="unknown-service-without-results",
            ),
        ],
    )
    def test_config_errors_are_one_line_with_exit_code_2(self, args: tuple[str, ...], message: str) -> None:
        """Bad flags: exit code 2 and a single readable line, no traceback."""
        result = harness(*args)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr

    def test_out_of_range_port_is_a_usage_error(self) -> None:
        """click rejects --port 70000 with its usage message and exit code 2."""
        result = harness("serve", "registry", "--port", "70000")
        assert result.returncode == 2
        assert "70000" in result.stderr
