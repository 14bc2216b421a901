"""A stack never loses a race for a port: the harness's own children bind port 0 themselves and their fault
proxy is pointed at the port they report; a user's command, which must be given a port, is started again on
a fresh one when its port was taken; a restart whose old port was taken moves behind the same proxy.

The churn test starts a small stack ``HARNESS_PORT_RACE_STARTS`` times (5 here) while another process
churns loopback ports; ``ci/port-race.sh`` runs it 30 times on the default stack
(``HARNESS_PORT_RACE_TOPOLOGY=default``), on demand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.errors import EnvironmentUnavailable
from harness.stack import OwnServiceTopology, Stack, Topology, fast_topology
from harness.stack._topology import RegistryTopology, ServiceTopology
from tests._children import reap

HERE = Path(__file__).parent
SERVICE = HERE / "_forking_service.py"
CHURN = HERE / "_churn.py"
STARTS = int(os.environ.get("HARNESS_PORT_RACE_STARTS", "5"))
FAST = RegistryTopology(ttl=1.0, check_interval=0.2, check_timeout=0.3, check_failures=2)


def small_topology(pids: Path, *flags: str) -> Topology:
    """The registry, two users instances and one instance of a command of the user's own on ``{port}``."""
    command = ["{python}", str(SERVICE), "--port", "{port}", "--pids", str(pids), *flags]
    return Topology(registry=FAST, startup_timeout=60.0, services={
        "users": ServiceTopology(instances=2, heartbeat_interval=0.3),
        "notifications": ServiceTopology(instances=0),
        "orchestrator": ServiceTopology(instances=0),
        "plain": OwnServiceTopology(command=command),
    })  # fmt: skip


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2.0, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def churn() -> Iterator[None]:
    """Another process opening and closing loopback connections (and port-0 listeners) all along."""
    process = subprocess.Popen([sys.executable, str(CHURN)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(b"churning"), "the churn did not start"
        time.sleep(1.0)  # its connections fill up first
        yield
    finally:
        process.terminate()
        reap(process, grace=5.0)


@pytest.mark.behaviour("harness.up", "harness.own_services")
def test_every_start_wins_its_ports_while_ports_churn(tmp_path: Path, churn: None) -> None:
    default = os.environ.get("HARNESS_PORT_RACE_TOPOLOGY") == "default"
    topology = fast_topology() if default else small_topology(tmp_path / "plain.pids")
    failures = []
    began = time.monotonic()
    for n in range(1, STARTS + 1):
        try:
            with Stack(topology, tmp_path / f"run-{n}"):
                pass
        except EnvironmentUnavailable as exc:
            failures.append(f"start {n}: {exc}")
    took = time.monotonic() - began
    print(f"\n{STARTS - len(failures)} of {STARTS} starts ({'default' if default else 'small'} stack) "
          f"while ports churned, in {took:.1f}s")  # fmt: skip
    assert failures == []


@pytest.mark.behaviour("harness.own_services")
def test_an_own_command_that_lost_its_port_starts_again_on_a_fresh_one(tmp_path: Path) -> None:
    """Its first start says "Address already in use" and exits: the stack starts it on another port, behind
    the same proxy, and says so in its log."""
    topology = small_topology(tmp_path / "plain.pids", "--fail-first", str(tmp_path / "failed-once"))
    with Stack(topology, tmp_path / "run") as stack:
        assert (tmp_path / "failed-once").exists()
        assert answers(stack.proxied_url("plain-1"))
        log = Path(str(stack.processes["plain-1"].log_path)).read_text()
        assert "port" in log, log
        assert "was taken by another process; starting again on port" in log, log


@pytest.mark.behaviour("harness.up", "harness.own_services")
@pytest.mark.parametrize("name", ["users-1", "plain-1"])
def test_a_restart_whose_port_was_taken_moves_behind_the_same_proxy(tmp_path: Path, name: str) -> None:
    """Killed, its port taken by someone else meanwhile: the restart binds another port, and its proxy (the
    address everyone holds) forwards there."""
    with Stack(small_topology(tmp_path / "plain.pids"), tmp_path / "run") as stack:
        old = stack.processes[name]
        assert old.port is not None
        proxied = stack.proxied_url(name)
        stack.kill(name)
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", old.port))
            squatter.listen()
            restarted = stack.restart(name)
            assert restarted.port not in (None, old.port)
            assert stack.proxied_url(name) == proxied
            assert answers(proxied)
