"""A fault held with ``--for`` ends on time even when the command that set it dies: the embedded fault proxy
ends it by itself (the ``expires_in`` extension), and against a Toxiproxy without the extension the stack's
watch ends it from the fault ledger. The fault proxy runs in a thread of this process; ``harness fault`` runs
as a real child process, SIGKILLed right after it applied the fault."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.events import EventLog, read_events
from harness.faults import (
    FaultConsole,
    FaultTarget,
    ThreadedToxiproxyServer,
    ToxiproxyClient,
    ToxiproxyProcess,
)
from harness.faults._console import EXPIRY_GRACE, LEDGER, EndedBy
from harness.faults._schedule import EXPIRY_MARGIN, FaultLedger
from harness.stack import (
    ExternalProxyWatch,
    FaultProxySupervisor,
    NoticeKind,
    ServiceProcess,
    Stack,
    Topology,
)
from harness.stack._topology import ServiceTopology
from tests._children import child_env, reap

pytestmark = pytest.mark.behaviour("harness.fault_cli")

HELD = 2.0  # seconds a fault is held for (--for 2s)
SLACK = 1.5  # seconds past its end the fault may take to go, on a busy machine
HELD_HERE = 0.5  # seconds a fault is held for by a command in this process


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedToxiproxyServer]:
    with ThreadedToxiproxyServer() as running:
        yield running


@pytest.fixture
def client(server: ThreadedToxiproxyServer) -> Iterator[ToxiproxyClient]:
    """A proxy named users-2 (its upstream need not answer: no traffic goes through it)."""
    with ToxiproxyClient(server.url) as toxiproxy:
        toxiproxy.create_proxy("users-2", listen="127.0.0.1:0", upstream="127.0.0.1:9")
        try:
            yield toxiproxy
        finally:
            toxiproxy.delete_proxy("users-2")


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> float:
    """Poll ``check()`` until it is true; the seconds it took. Fails after ``timeout`` seconds."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            pytest.fail(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.02)
    return time.monotonic() - began


def killed_after_applying(url: str, workdir: Path, *args: str) -> float:
    """Run ``harness fault ARGS`` until it says it holds the fault, then SIGKILL it; when it was killed."""
    env = {**os.environ, **child_env(), "TOXIPROXY_URL": url, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "harness", "fault", *args, "--workdir", str(workdir)]
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, env=env)  # fmt: skip
    try:
        assert holder.stdout is not None
        lines = []
        for line in holder.stdout:
            lines.append(line)
            if line.startswith("holding for"):
                break
        else:
            pytest.fail(f"harness fault ended without holding: {''.join(lines)}{holder.stderr}")
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        print("".join(lines), end="")
    finally:
        reap(holder)
    assert holder.returncode == -signal.SIGKILL
    return killed


class TestAKilledCommand:
    """``harness fault ... --for 2s`` SIGKILLed right after applying: the fault still ends 2 s later."""

    def test_a_held_toxic_is_removed_on_time(self, client: ToxiproxyClient, tmp_path: Path) -> None:
        killed = killed_after_applying(
            client.url, tmp_path, "add", "users-2", "latency", "latency=100", "--for", f"{HELD:g}s"
        )
        assert [t.type for t in client.toxics("users-2")] == ["latency"]
        wait_for(lambda: not client.toxics("users-2"), "the toxic's removal", HELD + SLACK)
        ended = time.monotonic() - killed
        print(f"toxic removed {ended:.2f}s after the kill")
        assert ended > HELD - 1.0

    def test_a_held_partition_ends_on_time(self, client: ToxiproxyClient, tmp_path: Path) -> None:
        killed = killed_after_applying(client.url, tmp_path, "down", "users-2", "--for", f"{HELD:g}s")
        assert not client.proxy("users-2").info.enabled
        wait_for(lambda: client.proxy("users-2").info.enabled, "the partition's end", HELD + SLACK)
        ended = time.monotonic() - killed
        print(f"proxy enabled again {ended:.2f}s after the kill")
        assert ended > HELD - 1.0


SCHEDULE_PLAYER = """
import sys
from harness.events import EventLog
from harness.faults import FaultApplier, FaultKind, FaultSchedule, FaultSpec, FaultWindow, ScheduleRunner
from harness.faults import ToxiproxyClient, ToxiproxyInjector

url, events, end = sys.argv[1], sys.argv[2], float(sys.argv[3])
window = FaultWindow(name="window", start=0.0, end=end,
                     fault=FaultSpec(kind=FaultKind.LATENCY, instance="users-2", attributes={"latency": 100}))
applier = FaultApplier(ToxiproxyInjector(ToxiproxyClient(url)), EventLog("t", events))
ScheduleRunner(FaultSchedule(windows=(window,)), applier).run()
"""


class TestAKilledSchedule:
    def test_a_window_of_a_killed_run_ends_soon_after_its_end(
        self, client: ToxiproxyClient, tmp_path: Path
    ) -> None:
        """A chaos or load run's fault schedule, SIGKILLed inside a 2 s window on a fault proxy that outlives
        it (an attached stack): the window's fault still ends, EXPIRY_MARGIN after the window."""
        window_end = 2.0
        player = subprocess.Popen(
            [sys.executable, "-c", SCHEDULE_PLAYER, client.url, str(tmp_path / "e.jsonl"), str(window_end)],
            stdin=subprocess.DEVNULL, env={**os.environ, **child_env()},
        )  # fmt: skip
        try:
            applied = wait_for(lambda: bool(client.toxics("users-2")), "the window's fault", 20.0)
            player.send_signal(signal.SIGKILL)
            killed = time.monotonic()
        finally:
            reap(player)
        left = wait_for(
            lambda: not client.toxics("users-2"), "the fault's end", window_end + EXPIRY_MARGIN + SLACK
        )
        ended = time.monotonic() - killed
        print(
            f"applied {applied:.2f}s after the start; ended {ended:.2f}s after the kill ({left:.2f}s polled)"
        )
        assert ended > window_end + EXPIRY_MARGIN - 1.0


class WithoutExpiry(httpx.HTTPTransport):
    """Sends every request without ``expires_in``: the fault proxy then answers as a real Toxiproxy does,
    which ignores the key and never names it in an answer."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        if isinstance(body, dict) and body.pop("expires_in", None) is not None:
            request = httpx.Request(request.method, request.url, json=body)
        return super().handle_request(request)


def console_on(
    url: str,
    workdir: Path,
    *,
    expiry: bool = True,
    watched: bool = False,
    wall_clock: Callable[[], float] = time.time,
) -> FaultConsole:
    """The console of `harness fault`, in this process, on a proxy with (or, seemingly, without) expiry."""
    client = ToxiproxyClient(url, transport=None if expiry else WithoutExpiry())
    target = FaultTarget(url, workdir, watched=watched)
    return FaultConsole(target, client=client, wall_clock=wall_clock)


def fault_events(workdir: Path) -> list[dict[str, object]]:
    return read_events(workdir / "events" / "harness-fault.jsonl")


@pytest.fixture
def watch(server: ThreadedToxiproxyServer, tmp_path: Path) -> Iterator[ExternalProxyWatch]:
    """The stack's watch of a Toxiproxy it did not start, on ``tmp_path`` as the stack's workdir."""
    events = EventLog("harness", tmp_path / "events" / "harness.jsonl")
    running = ExternalProxyWatch(server.url, events, interval=0.1)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        events.close()


class TestAProxyWithoutExpiry:
    """A Toxiproxy that ignores ``expires_in`` (as a real one does): the stack's watch ends the fault from the
    ledger once its time is up and its holder's grace is over; the holder's own end comes first."""

    @pytest.mark.parametrize("kind", ["toxic", "down"])
    def test_the_watch_ends_a_fault_whose_command_is_gone(
        self, client: ToxiproxyClient, watch: ExternalProxyWatch, tmp_path: Path, kind: str
    ) -> None:
        console = console_on(client.url, tmp_path, expiry=False, watched=True)
        try:
            if kind == "toxic":
                window = console.add("users-2", "latency", {"latency": 100}, hold_for=HELD_HERE)
            else:
                window = console.down("users-2", hold_for=HELD_HERE)
        finally:
            console.close()  # the command is gone: nobody holds the fault now
        applied = time.monotonic()
        assert console.ended_by[window.name] is EndedBy.WATCH
        ledger = FaultLedger.read(tmp_path / LEDGER)
        assert ledger.ends[window.name].by_proxy is False

        def over() -> bool:
            return client.toxics("users-2") == [] and client.proxy("users-2").info.enabled

        assert not over()  # the server itself keeps it
        wait_for(over, "the watch's end of the fault", HELD_HERE + EXPIRY_GRACE + SLACK)
        ended = time.monotonic() - applied
        print(f"{kind} ended {ended:.2f}s after it was applied for {HELD_HERE:g}s (grace {EXPIRY_GRACE}s)")
        assert ended >= HELD_HERE + EXPIRY_GRACE - 0.05

        def notices() -> list[str]:
            return [n.message for n in watch.notices if n.kind is NoticeKind.FAULT_EXPIRED]

        wait_for(lambda: bool(notices()), "the watch's notice", SLACK)  # given just after the end
        assert [window.name in message for message in notices()] == [True]
        assert FaultLedger.read(tmp_path / LEDGER).applied == ()
        [end] = [e for e in fault_events(tmp_path) if e["event"] == "fault.end"]
        assert (end["window"], end["reason"]) == (window.name, "expired")

    def test_a_live_holder_ends_its_fault_itself(self, client: ToxiproxyClient, tmp_path: Path) -> None:
        """Within the grace, another command leaves the fault to its holder, which ends it as "timed"."""
        holder = console_on(client.url, tmp_path, expiry=False, watched=True)
        later = lambda: time.time() + 0.3 + EXPIRY_GRACE / 2  # noqa: E731 - the fault's time is up, in grace
        other = console_on(client.url, tmp_path, expiry=False, watched=True, wall_clock=later)
        try:
            window = holder.add("users-2", "latency", {"latency": 100}, hold_for=0.3)
            assert other.end_expired() == []
            assert holder.release(window, reason="timed")
        finally:
            holder.close()
            other.close()
        assert client.toxics("users-2") == []
        [end] = [e for e in fault_events(tmp_path) if e["event"] == "fault.end"]
        assert end["reason"] == "timed"

    def test_without_a_stack_the_next_command_ends_it(self, client: ToxiproxyClient, tmp_path: Path) -> None:
        """No stack watches: the command says only it ends the fault; a later command ends it when over."""
        console = console_on(client.url, tmp_path, expiry=False)
        try:
            window = console.add("users-2", "latency", {"latency": 100}, hold_for=0.1)
        finally:
            console.close()
        assert console.ended_by[window.name] is EndedBy.COMMAND
        later = console_on(client.url, tmp_path, expiry=False, wall_clock=lambda: time.time() + EXPIRY_GRACE)
        try:
            wait_for(lambda: bool(later.end_expired()), "the next command's end of the fault", SLACK)
        finally:
            later.close()
        assert client.toxics("users-2") == []
        assert FaultLedger.read(tmp_path / LEDGER).applied == ()


class TestListing:
    """`harness fault list`: the time left of a held fault, and a partition under its ledger name."""

    def test_a_held_partition_and_toxic_are_listed_as_mine_with_their_time_left(
        self, client: ToxiproxyClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TOXIPROXY_URL", client.url)
        console = console_on(client.url, tmp_path)
        try:
            down = console.down("users-2", hold_for=30.0)
            toxic = console.add("users-2", "latency", {"latency": 100}, hold_for=20.0)
            listed = CliRunner().invoke(cli, ["fault", "list", "--workdir", str(tmp_path)])
        finally:
            console.close()
            client.update_proxy("users-2", enabled=True)
            client.remove_toxic("users-2", toxic.name)
        print(listed.output)
        assert listed.exit_code == 0, listed.output
        rows = {line.split()[2]: line for line in listed.output.splitlines()[1:]}
        assert rows[down.name].startswith("* users-2")
        assert rows[down.name].endswith("down  (ends in 30s)")
        assert rows[toxic.name].startswith("* users-2")
        assert rows[toxic.name].endswith("(ends in 20s)")

    def test_a_fault_without_an_end_shows_none(self, client: ToxiproxyClient, tmp_path: Path) -> None:
        client.add_toxic("users-2", "latency", name="by-hand")
        client.update_proxy("users-2", enabled=False)
        console = console_on(client.url, tmp_path)
        try:
            faults = console.faults()
        finally:
            console.close()
            client.update_proxy("users-2", enabled=True)
            client.remove_toxic("users-2", "by-hand")
        assert [(f.name, f.mine, f.ends_in, f.ending()) for f in faults] == [
            ("users-2 disabled", False, None, ""),
            ("by-hand", False, None, ""),
        ]


@pytest.mark.behaviour("proxy.api")
class TestTheExtension:
    """``expires_in`` (ms) on a toxic or a disabled proxy: shown as the time left, ended by the server."""

    def test_a_toxic_with_an_expiry_shows_it_and_is_removed_then(self, client: ToxiproxyClient) -> None:
        added = client.add_toxic("users-2", "latency", name="brief", expires_in=300)
        assert added.expires_in == 300
        assert 0 < (client.get_toxic("users-2", "brief").expires_in or 0) <= 300
        assert client.add_toxic("users-2", "latency", name="lasting").expires_in is None
        took = wait_for(lambda: [t.name for t in client.toxics("users-2")] == ["lasting"], "the end", SLACK)
        print(f"a 300 ms toxic was gone after {took * 1000:.0f} ms")
        client.remove_toxic("users-2", "lasting")

    def test_an_update_replaces_or_clears_the_expiry(self, client: ToxiproxyClient) -> None:
        client.add_toxic("users-2", "latency", name="kept", expires_in=200)
        assert client.update_toxic("users-2", "kept", attributes={"latency": 5}).expires_in is not None
        assert client.update_toxic("users-2", "kept", expires_in=0).expires_in is None
        client.add_toxic("users-2", "latency", name="moved", expires_in=10_000)
        assert client.update_toxic("users-2", "moved", expires_in=100).expires_in == 100
        wait_for(lambda: [t.name for t in client.toxics("users-2")] == ["kept"], "the moved end", SLACK)
        time.sleep(0.3)  # past the first expiry of "kept", which was cleared
        assert [t.name for t in client.toxics("users-2")] == ["kept"]
        client.remove_toxic("users-2", "kept")

    def test_a_disabled_proxy_with_an_expiry_is_enabled_again_then(self, client: ToxiproxyClient) -> None:
        proxy = client.proxy("users-2").disable(expires_in=300)
        assert (proxy.info.enabled, proxy.info.expires_in) == (False, 300)
        wait_for(lambda: client.proxy("users-2").info.enabled, "the partition's end", SLACK)
        assert client.proxy("users-2").info.expires_in is None
        client.update_proxy("users-2", enabled=False, expires_in=10_000)
        client.update_proxy("users-2", enabled=True)  # enabled by hand: the expiry goes with it
        assert client.proxy("users-2").info.expires_in is None

    @pytest.mark.parametrize(
        ("path", "body", "message"),
        [
            pytest.param(
                "/proxies/users-2/toxics", {"type": "latency", "expires_in": -1},
                "expires_in: must be between 0 and 604800000 ms", id="negative",
            ),
            pytest.param(
                "/proxies/users-2/toxics", {"type": "latency", "expires_in": 1.5},
                "bad request body: json: cannot unmarshal number 1.5 into Go struct field "
                "ToxicWrapper.expires_in of type int64", id="not-an-integer",
            ),
            pytest.param(
                "/proxies/users-2", {"enabled": True, "expires_in": 1000},
                'expires_in: only a disabled proxy expires (it is enabled again then); send "enabled":false',
                id="enabled-proxy",
            ),
        ],
    )  # fmt: skip
    def test_refusals_name_the_key(
        self, client: ToxiproxyClient, path: str, body: dict[str, object], message: str
    ) -> None:
        with httpx.Client(base_url=client.url, trust_env=False) as api:
            response = api.post(path, json=body)
        assert (response.status_code, response.json()["error"]) == (400, message)
        assert client.toxics("users-2") == []
        assert client.proxy("users-2").info.enabled

    def test_a_deleted_proxy_takes_its_expiries_along(self, server: ThreadedToxiproxyServer) -> None:
        with ToxiproxyClient(server.url) as toxiproxy:
            toxiproxy.create_proxy("brief", upstream="127.0.0.1:9")
            toxiproxy.add_toxic("brief", "latency", expires_in=100)
            toxiproxy.update_proxy("brief", enabled=False, expires_in=100)
            toxiproxy.delete_proxy("brief")
            toxiproxy.create_proxy("brief", upstream="127.0.0.1:9", enabled=False)
            toxiproxy.add_toxic("brief", "latency")
            time.sleep(0.3)  # past the old expiries: the new proxy keeps its toxic and state
            info = toxiproxy.proxy("brief").info
            toxiproxy.delete_proxy("brief")
        assert (info.enabled, [t.name for t in info.toxics]) == (False, ["latency_downstream"])


class TestTheStack:
    """The watches of a running stack: the external one finds the stack's ledger by itself; the embedded
    proxy's supervisor gives a restarted proxy its faults with the time they had left."""

    def test_a_stack_on_a_proxy_without_expiry_ends_a_fault_held_in_its_workdir(
        self, client: ToxiproxyClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TOXIPROXY_URL", client.url)
        alone = Topology(services={kind: ServiceTopology(instances=0)
                                   for kind in ("users", "notifications", "orchestrator")})  # fmt: skip
        with Stack(alone, tmp_path) as stack:
            assert isinstance(stack.supervisor, ExternalProxyWatch)
            console = console_on(client.url, stack.workdir, expiry=False, watched=True)
            try:
                window = console.down("users-2", hold_for=0.5)
            finally:
                console.close()
            applied = time.monotonic()
            wait_for(
                lambda: client.proxy("users-2").info.enabled, "the stack's end", 0.5 + EXPIRY_GRACE + SLACK
            )
            print(f"partition ended {time.monotonic() - applied:.2f}s after it was applied for 0.5s")
            log = stack.event_log("harness")

            def expired() -> list[dict[str, object]]:
                events = read_events(log) if log.exists() else []
                return [e for e in events if e["event"] == "toxiproxy.faults_expired"]

            wait_for(lambda: bool(expired()), "the stack's event", SLACK)  # written just after the end
            assert [window.name in str(e["faults"]) for e in expired()] == [True]

    @pytest.mark.behaviour("proxy.supervised")
    def test_a_restarted_embedded_proxy_keeps_the_time_left(self, tmp_path: Path) -> None:
        def launch(port: int, config: Path | None) -> ServiceProcess:
            return ToxiproxyProcess({"config": config}, port=port, env=child_env(), workdir=tmp_path / "logs")

        events = EventLog("harness", tmp_path / "events" / "harness.jsonl")
        supervisor = FaultProxySupervisor(launch, tmp_path, events)
        process = supervisor.start()
        try:
            with ToxiproxyClient(process.url) as toxiproxy:
                toxiproxy.create_proxy("held", upstream="127.0.0.1:9")
                toxiproxy.create_proxy("parted", upstream="127.0.0.1:9")
                toxiproxy.add_toxic("held", "latency", name="brief", expires_in=2500)
                toxiproxy.add_toxic("held", "latency", name="lasting")
                toxiproxy.update_proxy("parted", enabled=False, expires_in=2500)
                began = time.monotonic()
                supervisor.restart()
                assert supervisor.process is not process
                toxics = {t.name: t.expires_in for t in toxiproxy.toxics("held")}
                parted = toxiproxy.proxy("parted").info
                assert toxics["lasting"] is None
                assert 0 < (toxics["brief"] or 0) < 2500
                assert (parted.enabled, 0 < (parted.expires_in or 0) < 2500) == (False, True)
                wait_for(lambda: toxiproxy.proxy("parted").info.enabled, "the partition's end", 2.5 + SLACK)
                wait_for(lambda: len(toxiproxy.toxics("held")) == 1, "the toxic's end", SLACK)
                print(f"both ended {time.monotonic() - began:.2f}s after the restart began (2.5s asked)")
        finally:
            supervisor.stop()
            supervisor.process.stop()
            events.close()
