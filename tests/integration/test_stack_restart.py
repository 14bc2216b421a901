"""``Stack.restart`` from any thread: the child outlives the thread that asked for it.

Linux sends the death signal (PR_SET_PDEATHSIG) when the thread that forked a child exits; the stack forks
every child from its own long-lived spawner thread, so a worker thread may come and go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.stack import ServiceProcess, Stack, Topology
from harness.stack._topology import SERVICE_KINDS, ServiceTopology

REGISTRY_ONLY = Topology(
    proxies=False, services={kind: ServiceTopology(instances=0) for kind in SERVICE_KINDS}
)
OUTLIVES = 3.0  # seconds a restarted child must stay up after its thread ended; SIGTERM ends it in < 1 s


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(REGISTRY_ONLY, tmp_path) as running:
        yield running


def restart_in_a_thread(stack: Stack, name: str) -> ServiceProcess:
    """``stack.restart(name)`` in a worker thread that has ended when this returns."""
    restarted: list[ServiceProcess] = []
    worker = threading.Thread(target=lambda: restarted.append(stack.restart(name)), name="restarter")
    worker.start()
    worker.join(60.0)
    assert not worker.is_alive()
    assert len(restarted) == 1, "the restart in the worker thread failed"
    return restarted[0]


@pytest.mark.behaviour("harness.up")
class TestRestartFromAThread:
    def test_the_child_outlives_the_thread_that_restarted_it(self, stack: Stack) -> None:
        """Restarted from a thread that then exits, the registry still runs and answers seconds later."""
        process = restart_in_a_thread(stack, "registry")
        deadline = time.monotonic() + OUTLIVES
        while process.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.is_running(), f"the restarted child exited with {process.returncode}"
        assert httpx.get(f"{process.url}/health", timeout=2.0, trust_env=False).status_code == 200
        assert stack.processes["registry"] is process

    def test_stop_still_takes_the_restarted_child_down(self, stack: Stack) -> None:
        """The spawner thread is not a leak: stopping the stack stops the child restarted from a thread."""
        process = restart_in_a_thread(stack, "registry")
        stack.stop()
        assert not process.is_running()
        assert stack.spawner is not None
        with pytest.raises(RuntimeError, match="not running"):
            stack.spawner.call(lambda: None)
