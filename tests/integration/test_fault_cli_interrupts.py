"""`harness fault ... --for` interrupted at the worst moment: Ctrl-C or SIGTERM arriving while the fault is
being applied (before the countdown has begun) still removes it, with exit 0. The command runs in this
process (click's runner) against the embedded fault proxy in a thread, so the signal lands exactly there."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.faults import FaultConsole, FaultWindow, ThreadedToxiproxyServer, ToxiproxyClient

pytestmark = pytest.mark.behaviour("harness.fault_cli")


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedToxiproxyServer]:
    with ThreadedToxiproxyServer() as running:
        yield running


@pytest.fixture
def client(server: ThreadedToxiproxyServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ToxiproxyClient]:
    """A proxy named users-2 (its upstream need not answer: no traffic goes through it); TOXIPROXY_URL set."""
    monkeypatch.setenv("TOXIPROXY_URL", server.url)
    with ToxiproxyClient(server.url) as toxiproxy:
        toxiproxy.create_proxy("users-2", listen="127.0.0.1:0", upstream="127.0.0.1:9")
        try:
            yield toxiproxy
        finally:
            toxiproxy.delete_proxy("users-2")


def interrupted_while_applying(monkeypatch: pytest.MonkeyPatch, method: str, signum: signal.Signals) -> None:
    """``FaultConsole.<method>`` applies its fault, then this process gets ``signum``, as if the user's Ctrl-C
    (or a supervisor's SIGTERM) came just as the fault reached the proxy."""
    original: Callable[..., FaultWindow] = getattr(FaultConsole, method)

    def applied_then_signalled(self: FaultConsole, *args: Any, **kwargs: Any) -> FaultWindow:
        window = original(self, *args, **kwargs)
        os.kill(os.getpid(), signum)
        return window

    monkeypatch.setattr(FaultConsole, method, applied_then_signalled)


def ledger(workdir: Path) -> list[str]:
    path = workdir / "fault-ledger.json"
    return [w["name"] for w in json.loads(path.read_text())["applied"]] if path.exists() else []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_while_a_held_toxic_is_added_removes_it(
    client: ToxiproxyClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, signum: signal.Signals
) -> None:
    interrupted_while_applying(monkeypatch, "add", signum)
    result = CliRunner().invoke(
        cli, ["fault", "add", "users-2", "latency", "latency=100", "--for", "60s", "--workdir", str(tmp_path)]
    )
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "interrupted: removed latency" in result.output
    assert client.toxics("users-2") == []
    assert ledger(tmp_path) == []


def test_an_interrupt_while_a_held_partition_is_made_brings_the_instance_back(
    client: ToxiproxyClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    interrupted_while_applying(monkeypatch, "down", signal.SIGINT)
    result = CliRunner().invoke(cli, ["fault", "down", "users-2", "--for", "60s", "--workdir", str(tmp_path)])
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "interrupted: removed users-2 down" in result.output
    assert client.proxy("users-2").info.enabled
    assert ledger(tmp_path) == []
