"""The CLI refuses what would leave this machine, and says in one line what it cannot reach or bind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._run import harness

REMOTE = "http://10.1.2.3:8000"  # never contacted: refused before anything is sent


@pytest.fixture
def no_pacts(tmp_path: Path) -> Path:
    """An empty contracts folder: had the refusal been missed, verify would stop at "no pacts", offline."""
    folder = tmp_path / "contracts"
    folder.mkdir()
    return folder


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port with a listening socket on it, for as long as the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port the OS just handed out and nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.behaviour("harness.exit_codes")
class TestContractVerifyStaysOnLoopback:
    def test_a_remote_url_is_refused_without_allow_remote(self, no_pacts: Path) -> None:
        """--url users=<remote>: exit 2, one line naming the URL and --allow-remote."""
        result = harness("contract", "verify", "--contracts", str(no_pacts), "--url", f"users={REMOTE}")
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert REMOTE in result.stderr
        assert "--allow-remote" in result.stderr

    def test_a_remote_toxiproxy_url_from_the_environment_is_refused(self, no_pacts: Path) -> None:
        """TOXIPROXY_URL off this machine is refused the same way."""
        result = subprocess.run(
            [sys.executable, "-m", "harness", "contract", "verify", "--contracts", str(no_pacts)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
            env={**os.environ, "TOXIPROXY_URL": REMOTE},
        )
        assert result.returncode == 2
        assert f"TOXIPROXY_URL {REMOTE!r} is not a loopback address" in result.stderr
        assert "--allow-remote" in result.stderr

    def test_an_unreachable_provider_is_one_line(self, tmp_path: Path) -> None:
        """A loopback URL nobody listens on: exit 3, "cannot reach users at URL", no results recorded."""
        url = f"http://127.0.0.1:{closed_port()}"
        results = tmp_path / "results.json"
        result = harness(
            "contract", "verify", "--provider", "users", "--url", f"users={url}", "--results", str(results)
        )
        assert result.returncode == 3
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"cannot reach users at {url}" in result.stderr
        assert not results.exists()


@pytest.mark.behaviour("harness.exit_codes")
class TestServeOnABusyPort:
    def test_a_busy_port_is_one_line_and_exit_code_3(self, tmp_path: Path, busy_port: int) -> None:
        """harness serve users --port <busy>: exit 3 and one line naming the address, no traceback."""
        result = harness(
            "serve", "users", "--port", str(busy_port), "--database", str(tmp_path / "users.sqlite3")
        )
        assert result.returncode == 3
        assert result.stderr == (
            f"harness: error: cannot listen on 127.0.0.1:{busy_port}: Address already in use\n"
        )
