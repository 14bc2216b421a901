"""The fault proxy is no single point of failure: SIGKILLed under traffic it comes back on the same ports,
with every proxy and toxic, proxied calls and orders resume, and the saga invariants hold."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.checks import check_saga_invariants, collect_saga_snapshot
from harness.events import read_events
from harness.faults import ThreadedToxiproxyServer
from harness.stack import FaultProxyState, FaultProxySupervisor, NoticeKind, Stack, Topology, fast_topology
from harness.stack._topology import ServiceTopology

FAST = fast_topology()
RECOVERY_BOUND = 2.0  # seconds from the SIGKILL to every proxy answering again


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(FAST, tmp_path_factory.mktemp("supervised-stack")) as running:
        yield running


@pytest.fixture(autouse=True)
def no_toxic_left(stack: Stack) -> Iterator[None]:
    """Each test ends with every proxy enabled and free of toxics."""
    yield
    assert stack.toxiproxy is not None
    stack.toxiproxy.reset()


def supervisor_of(stack: Stack) -> FaultProxySupervisor:
    assert isinstance(stack.supervisor, FaultProxySupervisor)
    return stack.supervisor


def kill_fault_proxy(stack: Stack) -> float:
    """SIGKILL the fault proxy (no cleanup, no goodbye); returns when it happened."""
    pid = stack.processes["toxiproxy"].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return time.monotonic()


def every_proxy_answers(stack: Stack, http: httpx.Client) -> bool:
    for name in stack.proxies:
        try:
            if http.get(f"{stack.proxied_url(name)}/health").status_code != 200:
                return False
        except httpx.TransportError:
            return False
    return True


def wait_until_every_proxy_answers(stack: Stack, since: float, within: float = 15.0) -> float:
    """Seconds from ``since`` until a health call through every proxy succeeds (bounded by ``within``)."""
    with httpx.Client(timeout=0.5, trust_env=False) as http:
        while not every_proxy_answers(stack, http):
            assert time.monotonic() - since < within, f"proxies did not answer within {within}s"
            time.sleep(0.01)
    return time.monotonic() - since


def restarted_events(stack: Stack) -> list[dict[str, Any]]:
    return [e for e in read_events(stack.event_log("harness")) if e["event"] == "toxiproxy.restarted"]


def wait_for_restarts(stack: Stack, count: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while len(supervisor_of(stack).restarts) < count:
        assert time.monotonic() < deadline, f"no restart #{count} within {within}s"
        time.sleep(0.02)


class OrderLoop:
    """Orders placed one after another in a thread, at most ``rate`` per second and ``limit`` in all (while
    calls fail fast they would otherwise burn through the limit in a moment); each outcome kept with its
    time."""

    def __init__(self, stack: Stack, user: str, limit: int = 2_000, rate: float = 50.0) -> None:
        self.url = f"{stack.url('orchestrator-1')}/orders"
        self.user = user
        self.limit = limit
        self.pause = 1.0 / rate
        self.outcomes: list[tuple[float, str]] = []  # (monotonic time of the answer, state or error)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="order-loop")

    def _run(self) -> None:
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            for _ in range(self.limit):
                if self._stopping.wait(self.pause):
                    return
                try:
                    answer = http.post(self.url, json={"user_id": self.user, "amount": 1},
                                       headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
                    outcome = str(answer.json().get("state", answer.status_code))
                except (httpx.HTTPError, ValueError) as exc:
                    outcome = type(exc).__name__
                self.outcomes.append((time.monotonic(), outcome))

    def completed_after(self, moment: float) -> int:
        return sum(1 for at, state in list(self.outcomes) if at > moment and state == "COMPLETED")

    def wait_for_completed_after(self, moment: float, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while self.completed_after(moment) < count:
            assert self._thread.is_alive(), f"the order loop ended: {self.outcomes[-5:]}"
            assert time.monotonic() < deadline, f"fewer than {count} orders completed: {self.outcomes[-5:]}"
            time.sleep(0.05)

    def __enter__(self) -> OrderLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(60.0)


def invariant_violations_once_settled(stack: Stack, within: float = 30.0) -> list[str]:
    """The saga invariants, once in-flight orders had time to finish (the orchestrator's recovery loop)."""
    deadline = time.monotonic() + within
    while True:
        snapshot = collect_saga_snapshot(
            stack.url("orchestrator-1"), stack.url("users-1"), stack.url("notifications-1")
        )
        violations = check_saga_invariants(snapshot)
        if not violations or time.monotonic() >= deadline:
            return violations
        time.sleep(0.2)


@pytest.mark.behaviour("proxy.supervised")
class TestSigkillUnderTraffic:
    @pytest.mark.behaviour("saga.invariants")
    def test_proxied_calls_and_orders_resume_and_invariants_hold(self, stack: Stack) -> None:
        """SIGKILL amid orders: every proxy answers within 2 s, orders complete again, invariants hold."""
        user = f"u-{uuid.uuid4().hex[:8]}"
        body = {"id": user, "name": "N", "email": "n@example.test", "credit": 1_000_000}
        httpx.post(f"{stack.url('users-1')}/users", json=body).raise_for_status()
        restarts = len(supervisor_of(stack).restarts)
        with OrderLoop(stack, user) as orders:
            orders.wait_for_completed_after(0.0, 5, within=30.0)
            killed = kill_fault_proxy(stack)
            recovery = wait_until_every_proxy_answers(stack, killed)
            print(f"\nproxied calls answer again {recovery:.3f}s after the SIGKILL (bound {RECOVERY_BOUND}s)")
            orders.wait_for_completed_after(killed + recovery, 5, within=30.0)
            resumed = sorted(
                at for at, state in orders.outcomes if at > killed + recovery and state == "COMPLETED"
            )
            print(f"5 orders completed after that, the 5th {resumed[4] - killed:.3f}s after the SIGKILL")
        assert recovery < RECOVERY_BOUND
        assert invariant_violations_once_settled(stack) == []
        wait_for_restarts(stack, restarts + 1)
        event = restarted_events(stack)[-1]
        assert sorted(event["proxies_restored"]) == sorted(stack.proxies)
        assert supervisor_of(stack).state is FaultProxyState.RUNNING

    def test_the_same_api_port_and_proxy_ports_after_a_restart(self, stack: Stack) -> None:
        """Clients keep the API URL, instances keep their advertised proxy addresses."""
        assert stack.toxiproxy is not None
        before = {name: proxy.listen for name, proxy in stack.toxiproxy.proxies().items()}
        url = stack.processes["toxiproxy"].url
        restarts = len(supervisor_of(stack).restarts)
        killed = kill_fault_proxy(stack)
        wait_for_restarts(stack, restarts + 1)
        wait_until_every_proxy_answers(stack, killed)
        assert stack.processes["toxiproxy"].url == url
        assert {name: proxy.listen for name, proxy in stack.toxiproxy.proxies().items()} == before


@pytest.mark.behaviour("proxy.supervised")
class TestToxicsSurvive:
    def test_a_toxic_added_through_the_api_is_active_after_the_kill(self, stack: Stack) -> None:
        """300 ms latency on users-2, added directly: back after the SIGKILL, slowing users-2, named."""
        assert stack.toxiproxy is not None
        stack.toxiproxy.add_toxic("users-2", "latency", name="slow", attributes={"latency": 300})
        supervisor = supervisor_of(stack)
        deadline = time.monotonic() + 5.0
        while not any(p.toxics for p in supervisor.proxy_set.proxies if p.name == "users-2"):
            assert time.monotonic() < deadline, "the supervisor never read the toxic from the live server"
            time.sleep(0.02)
        assert '"slow"' in supervisor.path.read_text()  # kept in the workdir
        restarts = len(supervisor.restarts)
        killed = kill_fault_proxy(stack)
        wait_for_restarts(stack, restarts + 1)
        print(f"\nrestarted with its toxic {time.monotonic() - killed:.3f}s after the SIGKILL")
        toxic = stack.toxiproxy.get_toxic("users-2", "slow")
        assert (toxic.type, toxic.attributes["latency"]) == ("latency", 300)
        began = time.monotonic()
        httpx.get(f"{stack.proxied_url('users-2')}/health", timeout=5.0).raise_for_status()
        assert time.monotonic() - began >= 0.3
        event = restarted_events(stack)[-1]
        assert (event["toxics_restored"], event["toxics_dropped"]) == (["users-2/slow"], [])
        exited, restarted = supervisor.notices[-2:]
        assert (exited.kind, restarted.kind) == (NoticeKind.EXITED, NoticeKind.RESTARTED)
        assert "exited with code -9" in exited.message


@pytest.mark.behaviour("proxy.supervised")
class TestExplicitRestart:
    def test_stack_restart_from_a_thread_restores_the_toxics_and_lasts(self, stack: Stack) -> None:
        """``Stack.restart("toxiproxy")`` in a thread: same toxics; the new proxy outlives the thread."""
        assert stack.toxiproxy is not None
        stack.toxiproxy.add_toxic("users-1", "latency", name="slow", attributes={"latency": 50})
        old = stack.processes["toxiproxy"]
        worker = threading.Thread(target=stack.restart, args=("toxiproxy",), name="restarter")
        worker.start()
        worker.join(60.0)
        new = stack.processes["toxiproxy"]
        assert new is not old
        deadline = time.monotonic() + 2.0  # a death signal from the ended thread would land well within
        while new.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert new.is_running(), f"the restarted fault proxy exited with {new.returncode}"
        assert [t.name for t in stack.toxiproxy.toxics("users-1")] == ["slow"]
        assert restarted_events(stack)[-1]["toxics_restored"] == ["users-1/slow"]


@pytest.mark.behaviour("proxy.supervised")
class TestExternalProxy:
    def test_a_real_toxiproxy_that_dies_is_reported_not_restarted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """TOXIPROXY_URL: its death is an event and a notice naming it; the harness starts no proxy."""
        server = ThreadedToxiproxyServer().start()
        monkeypatch.setenv("TOXIPROXY_URL", server.url)
        alone = Topology(services={kind: ServiceTopology(instances=0)
                                   for kind in ("users", "notifications", "orchestrator")})  # fmt: skip
        try:
            with Stack(alone, tmp_path) as external:
                assert "toxiproxy" not in external.processes
                server.stop()
                deadline = time.monotonic() + 10.0
                assert external.supervisor is not None
                while external.supervisor.state is not FaultProxyState.UNREACHABLE:
                    assert time.monotonic() < deadline, "the loss of the external proxy was not noticed"
                    time.sleep(0.02)
                assert external.supervisor.notices[-1].kind is NoticeKind.UNREACHABLE
                assert server.url in external.supervisor.notices[-1].message
                lost = [e for e in read_events(external.event_log("harness"))
                        if e["event"] == "toxiproxy.unreachable"]  # fmt: skip
                assert [(e["url"], e["restartable"]) for e in lost] == [(server.url, False)]
        finally:
            server.stop()
